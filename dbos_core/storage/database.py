"""Engine setup and transaction boundaries for the system database.

Every connection runs in autocommit mode: a single statement is its own durable
transaction (one round trip), and multi-statement writes open one explicitly,
``BEGIN IMMEDIATE`` on SQLite so that two processes never deadlock upgrading
read locks, plain ``BEGIN`` on PostgreSQL.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.engine.url import URL, make_url

from ..error import DBOSConfigurationError, DBOSDatabaseUnavailableError
from ..identifiers import check_schema_name
from ..observability import signals
from .schema import SCHEMA_PLACEHOLDER

logger = logging.getLogger("dbos")

SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalize_url(url: str) -> URL:
    """Parse a user URL, choosing psycopg 3 when no PostgreSQL driver is named."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise DBOSConfigurationError(f"Malformed database URL {url!r}: {exc}") from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def safe_url(url: URL | str) -> str:
    parsed = make_url(url) if isinstance(url, str) else url
    return parsed.render_as_string(hide_password=True)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    # WAL lets readers run beside the writer; FULL fsyncs the WAL on every commit,
    # so a returned commit survives power loss, not just a process crash.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Database:
    """One SQLAlchemy engine plus the dialect facts the storage modules need."""

    def __init__(
        self,
        url: str,
        *,
        schema: str = "dbos",
        pool_size: int = 20,
        engine_kwargs: dict[str, Any] | None = None,
        engine: Engine | None = None,
    ) -> None:
        self.url = normalize_url(url) if engine is None else engine.url
        self.dialect = self.url.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise DBOSConfigurationError(f"Unsupported system database {safe_url(self.url)!r}")
        self.is_sqlite = self.dialect == "sqlite"
        # It reaches SQL text (CREATE/DROP SCHEMA, LISTEN): a plain identifier only.
        self.schema = check_schema_name(schema, "system database schema")
        translate = {SCHEMA_PLACEHOLDER: None if self.is_sqlite else schema}
        self.owns_engine = engine is None
        if engine is None:
            # Autocommit as the engine default: a per-checkout switch would cost a
            # statement on every connection return (SQLite resets it with a PRAGMA).
            engine = self._create_engine(pool_size, engine_kwargs or {})
            self.engine: Engine = engine.execution_options(schema_translate_map=translate)
        else:
            self.engine = engine.execution_options(
                isolation_level="AUTOCOMMIT", schema_translate_map=translate
            )

    def _create_engine(self, pool_size: int, engine_kwargs: dict[str, Any]) -> Engine:
        kwargs = dict(engine_kwargs)
        if self.is_sqlite:
            kwargs.pop("pool_timeout", None)
            kwargs.setdefault("pool_size", pool_size)
            kwargs.setdefault("max_overflow", 0)
            connect_args = dict(kwargs.pop("connect_args", {}))
            connect_args.setdefault("check_same_thread", False)
            connect_args.setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
            engine = sa.create_engine(
                self.url,
                poolclass=sa.pool.QueuePool,
                connect_args=connect_args,
                isolation_level="AUTOCOMMIT",
                **kwargs,
            )
            sa.event.listen(engine, "connect", _sqlite_on_connect)
            return engine
        kwargs["pool_size"] = pool_size
        kwargs.setdefault("max_overflow", 0)
        kwargs.setdefault("pool_timeout", 30)
        kwargs.setdefault("pool_pre_ping", False)
        connect_args = dict(kwargs.pop("connect_args", {}))
        connect_args.setdefault("connect_timeout", 10)
        connect_args.setdefault("application_name", "dbos_core")
        return sa.create_engine(
            self.url, connect_args=connect_args, isolation_level="AUTOCOMMIT", **kwargs
        )

    # -- transaction boundaries -------------------------------------------------

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """An autocommit connection: each statement commits on its own."""
        with self.engine.connect() as conn:
            yield conn

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction that holds the write lock from its first statement."""
        with self.engine.connect() as conn:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if self.is_sqlite else "BEGIN")
            try:
                yield conn
            except BaseException:
                try:
                    conn.exec_driver_sql("ROLLBACK")
                except Exception:  # the connection may be gone; the pool discards it
                    conn.invalidate()
                raise
            conn.exec_driver_sql("COMMIT")

    # -- startup ----------------------------------------------------------------

    def wait_until_reachable(self, timeout: float) -> None:
        """Connect once, retrying for ``timeout`` seconds, and create a missing PG database."""
        deadline = time.monotonic() + timeout
        delay = 0.1
        created = False
        while True:
            try:
                with self.engine.connect() as conn:
                    conn.exec_driver_sql("SELECT 1")
                return
            except sa.exc.OperationalError as exc:
                text = str(exc.orig) if exc.orig is not None else str(exc)
                if (
                    not self.is_sqlite
                    and not created
                    and "does not exist" in text
                    and self.owns_engine
                ):
                    self._create_pg_database()
                    created = True
                    continue
                if self.is_sqlite and "unable to open database file" in text:
                    raise DBOSDatabaseUnavailableError(
                        f"Cannot open the SQLite system database {safe_url(self.url)!r}: {text} "
                        "(does its directory exist and is it writable?)"
                    ) from exc
                if time.monotonic() >= deadline:
                    raise DBOSDatabaseUnavailableError(
                        f"Cannot reach the system database {safe_url(self.url)!r} after "
                        f"{timeout:.0f}s: {text.strip()}"
                    ) from exc
                logger.warning("System database not reachable yet (%s); retrying", text.strip())
                signals.database_retry("system")
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _create_pg_database(self) -> None:
        name = self.url.database
        admin = sa.create_engine(self.url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                exists = conn.execute(
                    sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
                ).first()
                if not exists:
                    logger.info("Creating PostgreSQL database %s", name)
                    try:
                        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
                    except sa.exc.ProgrammingError:
                        pass  # another process created it at the same moment
        finally:
            admin.dispose()

    def dispose(self) -> None:
        if self.owns_engine:
            self.engine.dispose()


def is_unique_violation(exc: BaseException) -> bool:
    if not isinstance(exc, sa.exc.IntegrityError):
        return False
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate is not None:
        return bool(sqlstate == "23505")
    return "UNIQUE constraint failed" in str(orig)


def is_foreign_key_violation(exc: BaseException) -> bool:
    if not isinstance(exc, sa.exc.IntegrityError):
        return False
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate is not None:
        return bool(sqlstate == "23503")
    return "FOREIGN KEY constraint failed" in str(orig)
