"""Shared fixtures: every test gets a fresh system database on the chosen backend.

Choose the backend with DBOS_TEST_BACKEND=sqlite (default) or postgres; the
PostgreSQL server is DBOS_TEST_PG_URL (default postgresql://postgres@127.0.0.1:5432).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dbos_core import DBOS, DBOSConfig

BACKEND = os.environ.get("DBOS_TEST_BACKEND", "sqlite")
PG_SERVER = os.environ.get("DBOS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432")


def pytest_report_header(config: Any) -> str:
    return f"dbos backend: {BACKEND}"


def _pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def make_database_url(tmp_path: Path, label: str = "sys") -> str:
    if BACKEND == "postgres":
        name = f"dbos_test_{label}_{uuid.uuid4().hex[:12]}"
        _pg_admin(f'CREATE DATABASE "{name}"')
        _created_pg_databases.append(name)
        return f"{PG_SERVER}/{name}"
    return f"sqlite:///{tmp_path / (label + '.sqlite')}"


_created_pg_databases: list[str] = []


@pytest.fixture()
def fresh_db_url(tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database that no other test uses."""
    start = len(_created_pg_databases)
    yield make_database_url(tmp_path)
    for name in _created_pg_databases[start:]:
        with contextlib.suppress(Exception):
            _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    del _created_pg_databases[start:]


@pytest.fixture()
def db_url(fresh_db_url: str) -> str:
    return fresh_db_url


@pytest.fixture()
def dbos_config(db_url: str) -> DBOSConfig:
    return {
        "name": "test-app",
        "system_database_url": db_url,
        "notification_poll_interval": 0.05,
        # Tests register workflows after launch; a pinned version keeps recovery stable.
        "application_version": "test-version",
    }


@pytest.fixture()
def dbos(dbos_config: DBOSConfig) -> Iterator[type[DBOS]]:
    """A launched DBOS on a fresh database, destroyed after the test."""
    DBOS.destroy()
    DBOS(config=dbos_config)
    DBOS.launch()
    yield DBOS
    DBOS.destroy()


@pytest.fixture()
def relaunch(dbos_config: DBOSConfig) -> Any:
    """Destroy the current DBOS and launch a new one on the same database."""

    def _relaunch(**overrides: Any) -> None:
        DBOS.destroy()
        DBOS(config={**dbos_config, **overrides})  # type: ignore[typeddict-item]
        DBOS.launch()

    return _relaunch
