"""Settings of the django_notes example: SQLite by default, PostgreSQL if NOTES_PG_NAME is set."""

from __future__ import annotations

import os
from pathlib import Path

SECRET_KEY = os.environ.get("NOTES_SECRET_KEY", "django-notes-example-not-secret")
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
ROOT_URLCONF = "example_projects.django_notes.notes_site.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "dbos_django",  # durable workflows: settings, transactions, commands, admin
    "example_projects.django_notes.notes",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Idempotency-key header -> workflow ID; request.user -> authenticated_user.
    "dbos_django.middleware.DBOSMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
STATIC_URL = "static/"

if os.environ.get("NOTES_PG_NAME"):
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ["NOTES_PG_NAME"],
            "USER": os.environ.get("NOTES_PG_USER", "postgres"),
            "HOST": os.environ.get("NOTES_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("NOTES_PG_PORT", "5432"),
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("NOTES_DB_PATH", str(Path.cwd() / "notes.sqlite3")),
            "OPTIONS": {"timeout": 20},
        }
    }

# The DBOS system tables live in the "default" database too (no other key needed).
DBOS = {"name": "django-notes"}

# Tracing: NOTES_OTLP_COLLECTOR=http://localhost:4318 exports traces and logs over OTLP/HTTP
# (__main__.py and wsgi.py instrument Django, so requests are spans too).
if os.environ.get("NOTES_OTLP_COLLECTOR"):
    _collector = os.environ["NOTES_OTLP_COLLECTOR"]
    DBOS["enable_otlp"] = True
    DBOS["otlp_traces_endpoints"] = [f"{_collector}/v1/traces"]
    DBOS["otlp_logs_endpoints"] = [f"{_collector}/v1/logs"]
# Prometheus metrics at /metrics/, for staff users (see urls.py).
if os.environ.get("NOTES_METRICS"):
    DBOS["enable_metrics"] = True
