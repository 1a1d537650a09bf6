"""Migrate, create the users ("staff": a superuser; "customer": not staff), serve.

``python -m tests.dashboard.apps.django_site.serve`` with DASH_PORT, DASH_PASSWORD,
DASH_DB_URL and DASH_DJANGO_DB; Django's own server, threaded.
"""

from __future__ import annotations

import os

import django
from django.core.management import call_command


def main() -> None:
    # Ours, even when the environment names another site (the Django tests set one).
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.dashboard.apps.django_site.settings"
    django.setup()
    from django.contrib.auth.models import User

    call_command("migrate", verbosity=0)
    password = os.environ["DASH_PASSWORD"]
    if not User.objects.filter(username="staff").exists():
        User.objects.create_superuser("staff", "staff@example.com", password)
        User.objects.create_user("customer", "customer@example.com", password)
    # Launch before serving, so that the server answers only once DBOS runs (and its
    # system database exists for the test's client).
    import dbos_django

    dbos_django.launch()
    call_command("runserver", f"127.0.0.1:{os.environ['DASH_PORT']}", use_reloader=False)


if __name__ == "__main__":
    main()
