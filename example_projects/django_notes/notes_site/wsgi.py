"""WSGI entry point (gunicorn example_projects.django_notes.notes_site.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_projects.django_notes.notes_site.settings")
if os.environ.get("NOTES_OTLP_COLLECTOR"):
    # Request spans, installed before Django builds its middleware chain.
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    DjangoInstrumentor().instrument()
application = get_wsgi_application()
# DBOS launches in each worker on its first request; to launch (and recover) at once in a
# server that does not fork after importing this, call dbos_django.launch() here, or set
# post_fork = dbos_django.post_fork in gunicorn.conf.py when using --preload.
