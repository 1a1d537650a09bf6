"""What every backend's harness shares: the application tables, the execution log,
the race that makes two transactions conflict, and the crash points."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa

# The application's tables, created the same way for every backend; each harness maps
# them with its own ORM.
app_metadata = sa.MetaData()
items = sa.Table(
    "txn_items",
    app_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
)
counters = sa.Table(
    "txn_counters",
    app_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("value", sa.Integer, nullable=False),
)


@contextlib.contextmanager
def app_databases(tmp_path: Path, *labels: str) -> Iterator[list[str]]:
    """Empty application databases (SQLite files, or PostgreSQL databases dropped after)."""
    from tests.conftest import _created_pg_databases, _pg_admin, make_database_url

    start = len(_created_pg_databases)
    try:
        yield [make_database_url(tmp_path, label) for label in labels]
    finally:
        for name in _created_pg_databases[start:]:
            with contextlib.suppress(Exception):
                _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        del _created_pg_databases[start:]


def sync_url(url: str) -> str:
    """The URL with the psycopg 3 driver named (SQLAlchemy would pick psycopg2)."""
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def async_url(url: str) -> str:
    if url.startswith("sqlite:"):
        return url.replace("sqlite:", "sqlite+aiosqlite:", 1)
    return sync_url(url)


# -- the execution log: one line each time a transaction body runs ----------------

log_path: Path | None = None


def record(event: str) -> None:
    """Append (and fsync) before the body writes, so a SIGKILL cannot lose the line."""
    assert log_path is not None, "the harness sets tests.transactions.common.log_path"
    with open(log_path, "a") as f:
        f.write(event + "\n")
        f.flush()
        os.fsync(f.fileno())


def executions() -> list[str]:
    assert log_path is not None
    return log_path.read_text().splitlines() if log_path.exists() else []


# -- crash points (set in the child process of the crash tests) -------------------

crash_mode: str | None = None


def crash_point_in_body() -> None:
    """Called by the bodies after their writes: SIGKILL before the commit."""
    if crash_mode == "before-commit":
        os.kill(os.getpid(), signal.SIGKILL)


# -- the race: both transactions have read before either writes -------------------


class Race:
    """Per label, counts the attempts; on the first attempt of each of two labels, waits
    until the other has also read, so the two transactions really overlap."""

    def __init__(self) -> None:
        self.attempts: dict[str, int] = {}
        self._barrier: threading.Barrier | None = None
        self._async_barrier: asyncio.Barrier | None = None

    def arm(self, parties: int = 2) -> None:
        self.attempts = {}
        self._barrier = threading.Barrier(parties, timeout=30)
        self._async_barrier = asyncio.Barrier(parties)

    def _first(self, label: str) -> bool:
        self.attempts[label] = self.attempts.get(label, 0) + 1
        return self.attempts[label] == 1

    def after_read(self, label: str) -> None:
        if self._first(label) and self._barrier is not None:
            self._barrier.wait()

    async def after_read_async(self, label: str) -> None:
        if self._first(label) and self._async_barrier is not None:
            await asyncio.wait_for(self._async_barrier.wait(), 30)


race = Race()
