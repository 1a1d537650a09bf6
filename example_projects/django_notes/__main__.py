"""``python -m example_projects.django_notes [--port 8000]``: migrate, create the admin
user ``demo``/``demo`` if missing, launch DBOS and serve with Django's development server."""

from __future__ import annotations

import argparse
import os


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the django_notes example")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    os.environ.setdefault(
        "DJANGO_SETTINGS_MODULE", "example_projects.django_notes.notes_site.settings"
    )
    import django
    from django.core.management import call_command

    instrument_if_traced()
    django.setup()
    call_command("migrate", "--noinput", verbosity=0)
    from django.contrib.auth import get_user_model

    users = get_user_model()
    if not users.objects.filter(username="demo").exists():
        users.objects.create_superuser("demo", "demo@example.com", "demo")
    import dbos_django

    # Launch now, so that workflows interrupted by a crash resume before the first request.
    dbos_django.launch()
    print(f"django_notes on http://{args.host}:{args.port}/ (admin: demo / demo)", flush=True)
    call_command("runserver", f"{args.host}:{args.port}", use_reloader=False)


def instrument_if_traced() -> None:
    """Request spans (honouring an inbound traceparent), before Django loads its middleware:
    a note published by a request is then a child of the request's span."""
    if os.environ.get("NOTES_OTLP_COLLECTOR"):
        from opentelemetry.instrumentation.django import DjangoInstrumentor

        DjangoInstrumentor().instrument()


if __name__ == "__main__":
    main()
