"""Fixtures of the shared transaction-backend suite: an application database with the
suite's tables, and a launched harness for the backend under test."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dbos_core import DBOS

# The Django harness needs a configured Django (the same settings as tests/django).
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.django.settings")
import django

django.setup()
from dbos_core.integration import set_transaction_backend_factory  # noqa: E402

# AppConfig.ready() routed transactions to Django for the process: each harness chooses.
set_transaction_backend_factory(None)

from tests.transactions import common  # noqa: E402
from tests.transactions.harness import BACKENDS, Harness, create_app_tables, harness_for  # noqa: E402


@pytest.fixture()
def app_url(tmp_path: Path) -> Iterator[str]:
    with common.app_databases(tmp_path, "app") as (url,):
        create_app_tables(url)
        yield url


@pytest.fixture()
def execution_log(tmp_path: Path) -> Iterator[Path]:
    common.log_path = tmp_path / "executions.log"
    yield common.log_path
    common.log_path = None


@pytest.fixture(params=sorted(BACKENDS))
def backend_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture()
def harness(
    backend_name: str, db_url: str, app_url: str, execution_log: Path, request: Any
) -> Iterator[Harness]:
    blocker = contextlib.nullcontext()
    if backend_name == "django-orm":
        # pytest-django blocks database access outside its own test databases.
        blocker = request.getfixturevalue("django_db_blocker").unblock()
    with blocker:
        DBOS.destroy()
        instance = harness_for(backend_name, db_url, app_url)
        instance.launch()
        try:
            yield instance
        finally:
            instance.destroy()
            set_transaction_backend_factory(None)
