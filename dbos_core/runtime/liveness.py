"""Which runtime instances are alive, told by locks that die with their process.

Every launched runtime holds a lock for as long as it runs: a session-level advisory
lock on PostgreSQL (on a connection of its own), an ``flock`` on a small file beside
the database on SQLite. The operating system or the database server drops the lock
the moment the process dies, SIGKILL included, so "is instance X alive?" is answered
exactly and at once, with no heartbeat to wait out. Recovery uses it to take over the
PENDING workflows of dead processes only, even when several live processes share one
executor ID.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import threading
from pathlib import Path
from typing import Any


def _advisory_key(schema: str, instance_id: str) -> int:
    digest = hashlib.blake2b(f"dbos-instance:{schema}:{instance_id}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


class Liveness:
    """Holds this instance's lock and checks other instances' locks."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def is_alive(self, instance_id: str) -> bool:
        raise NotImplementedError


class PostgresLiveness(Liveness):
    def __init__(self, conninfo: str, schema: str, instance_id: str) -> None:
        self._conninfo = conninfo
        self._schema = schema
        self._instance_id = instance_id
        self._lock = threading.Lock()
        self._conn: Any = None

    def start(self) -> None:
        import psycopg

        self._conn = psycopg.connect(self._conninfo, autocommit=True)
        self._conn.execute(
            "SELECT pg_advisory_lock(%s)", (_advisory_key(self._schema, self._instance_id),)
        )

    def stop(self) -> None:
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    self._conn.close()  # closing the session releases the lock
                self._conn = None

    def is_alive(self, instance_id: str) -> bool:
        key = _advisory_key(self._schema, instance_id)
        with self._lock:
            if self._conn is None:
                return True  # cannot tell: assume alive, never steal work
            got = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]
            if got:
                self._conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
            return not got


class FileLiveness(Liveness):
    """For SQLite: one lock file per live instance, in a folder beside the database."""

    def __init__(self, database_path: str, instance_id: str) -> None:
        path = Path(database_path)
        self._dir = path.parent / f"{path.name}.instances"
        self._instance_id = instance_id
        self._fd: int | None = None

    def _path(self, instance_id: str) -> Path:
        return self._dir / f"{instance_id}.lock"

    def start(self) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path(self._instance_id), os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._fd = fd

    def stop(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                self._path(self._instance_id).unlink()
            os.close(self._fd)  # closing releases the lock
            self._fd = None

    def is_alive(self, instance_id: str) -> bool:
        try:
            fd = os.open(self._path(instance_id), os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        # We got the lock: its owner is gone. Tidy up its file.
        with contextlib.suppress(OSError):
            self._path(instance_id).unlink()
        return False
