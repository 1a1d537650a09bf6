"""pytest-django support: ``pytest_plugins = ["dbos_django.testing"]`` in conftest.py.

The ``django_dbos`` fixture launches DBOS against the *test* databases (the system
database URL is resolved from the Django alias after the test runner switched it to the
test database), with fresh system tables for every test, and destroys it afterwards.
It uses ``transactional_db``: DBOS transactions refuse to run inside the ``atomic()``
block in which the ``db`` fixture wraps each test, and workflow threads must see the
test's committed rows. Override ``dbos_test_config`` to change DBOSConfig fields.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture()
def dbos_test_config() -> dict[str, Any]:
    """DBOSConfig fields to override for tests (e.g. a pinned application_version)."""
    return {"application_version": "test"}


@pytest.fixture()
def django_dbos(transactional_db: None, dbos_test_config: dict[str, Any]) -> Iterator[Any]:
    from dbos_core import DBOS, integration

    from . import conf

    integration.destroy()
    config: Any = {**conf.dbos_config(), **dbos_test_config}
    DBOS(config=config)
    DBOS.reset_system_database()
    DBOS.launch()
    try:
        yield DBOS
    finally:
        DBOS.destroy()
