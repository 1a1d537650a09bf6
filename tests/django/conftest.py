"""pytest-django for tests/django only: the settings module is chosen here, so the core
tests (which never touch Django) are not affected."""

from __future__ import annotations

import os
from collections.abc import Iterator

import django
import pytest

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.django.settings")
django.setup()

# A project would write pytest_plugins = ["dbos_django.testing"] in its root conftest.py;
# pytest allows that only at the root, so this folder imports the fixtures instead.
from dbos_core.integration import set_transaction_backend_factory  # noqa: E402
from dbos_django import conf, transactions  # noqa: E402
from dbos_django.testing import dbos_test_config, django_dbos  # noqa: E402

__all__ = ["dbos_test_config", "django_dbos"]

# AppConfig.ready() routed @DBOS.transaction to the Django ORM for the whole process; in a
# run over the whole tests/ tree the core tests need the SQLAlchemy backend, so the Django
# one is installed only around each Django test.
set_transaction_backend_factory(None)


@pytest.fixture(autouse=True)
def _django_transaction_backend() -> Iterator[None]:
    transactions.install(conf.load().transaction_database)
    yield
    set_transaction_backend_factory(None)
