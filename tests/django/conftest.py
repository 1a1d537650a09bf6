"""pytest-django for tests/django only: the settings module is chosen here, so the core
tests (which never touch Django) are not affected."""

from __future__ import annotations

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.django.settings")
django.setup()

# A project would write pytest_plugins = ["dbos_django.testing"] in its root conftest.py;
# pytest allows that only at the root, so this folder imports the fixtures instead.
from dbos_django.testing import dbos_test_config, django_dbos  # noqa: E402

__all__ = ["dbos_test_config", "django_dbos"]
