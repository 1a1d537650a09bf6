"""Django settings of the dbos_django tests (pytest-django and `manage.py` subprocesses).

Backend from DBOS_TEST_BACKEND (sqlite | postgres). Three aliases: ``default`` (the
app and the transaction checkpoints), ``other`` (transactions with ``using=``) and
``system`` (the DBOS system database, through ``system_database_alias``). Where they
live: DBOS_DJANGO_DB (a directory on SQLite, a database-name prefix on PostgreSQL);
without it a fresh one per process, so parallel sessions never share a database.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from urllib.parse import urlsplit

BACKEND = os.environ.get("DBOS_TEST_BACKEND", "sqlite")
# The same server as the core tests (tests/conftest.py).
_PG = urlsplit(os.environ.get("DBOS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432"))
LOCATION = os.environ.get("DBOS_DJANGO_DB")

SECRET_KEY = "dbos-django-tests-only"
DEBUG = True
ALLOWED_HOSTS = ["*"]
USE_TZ = True
ROOT_URLCONF = "tests.django.testapp.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "dbos_django",
    "tests.django.testapp",
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


def _databases() -> dict[str, dict[str, object]]:
    if BACKEND == "postgres":
        prefix = LOCATION or f"dbos_dj_{uuid.uuid4().hex[:10]}"

        def pg(suffix: str) -> dict[str, object]:
            name = prefix + suffix
            return {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": name,
                "USER": _PG.username or "postgres",
                "PASSWORD": _PG.password or "",
                "HOST": _PG.hostname or "127.0.0.1",
                "PORT": str(_PG.port or 5432),
                "TEST": {"NAME": f"test_{name}"},
            }

        return {"default": pg(""), "other": pg("_other"), "system": pg("_system")}
    directory = LOCATION or tempfile.mkdtemp(prefix="dbos_dj_")

    def lite(name: str) -> dict[str, object]:
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.path.join(directory, f"{name}.sqlite3"),
            # A file, never in-memory: DBOS threads and the test share it.
            "TEST": {"NAME": os.path.join(directory, f"test_{name}.sqlite3")},
            "OPTIONS": {"timeout": 30},
        }

    return {"default": lite("default"), "other": lite("other"), "system": lite("system")}


DATABASES = _databases()

DBOS = {
    "name": "dbos-django-tests",
    "system_database_alias": "system",
    "notification_poll_interval": 0.05,
    "application_version": os.environ.get("DBOS_DJANGO_APP_VERSION", "test"),
}
