"""Settings of the dashboard's Django test site (a real server: manage.py runserver)."""

from __future__ import annotations

import os

SECRET_KEY = os.environ.get("DASH_PASSWORD", "unused") + "-django-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
ROOT_URLCONF = "tests.dashboard.apps.django_site.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "dbos_django",
    "tests.dashboard.apps.django_site",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
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
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DASH_DJANGO_DB", "dash-django.sqlite3"),
        "OPTIONS": {"timeout": 20},
    }
}
DBOS = {
    "name": "dash-django",
    "system_database_url": os.environ.get("DASH_DB_URL"),
    "application_version": "dash-test",
}
