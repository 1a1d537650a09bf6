"""How every SQLAlchemy-based backend opens, commits and aborts a transaction.

Written once on a sync ``Connection``: the sync backends call these functions
directly, the async backend through ``AsyncConnection.run_sync`` (which runs them
on the async driver). The rules:

- PostgreSQL: the connection is set to the requested isolation level before it
  begins (psycopg sends the level with its BEGIN; the pool restores the engine's
  own level when the connection goes back), whatever the engine's default is,
  AUTOCOMMIT included.
- SQLite: serializable whatever the level. An explicit deferred ``BEGIN`` makes the
  function's reads part of its transaction (the sqlite3 driver would otherwise
  begin only before the first write, letting a read-modify-write lose updates).
  A conflict with another writer surfaces as SQLITE_BUSY and is retried.
- The function's session joins the transaction in ``rollback_only`` mode: its
  ``commit()`` only flushes; the commit is ours, with the checkpoint. A function
  that ends the transaction itself (``session.rollback()``) gets a clear error and
  nothing of it commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..storage.database import is_unique_violation
from .backend import RecordedOutput
from .checkpoint_sql import SCHEMA_PLACEHOLDER, schema_options, select_output
from .errors import transaction_ended_error

# Passed to the application's session factory for every transaction's session.
SESSION_OPTIONS: dict[str, Any] = {"join_transaction_mode": "rollback_only"}


@dataclass
class OpenTransaction:
    outer: sa.RootTransaction
    # True when we sent BEGIN ourselves (SQLite), so COMMIT/ROLLBACK are ours to send.
    explicit: bool


def _driver_in_transaction(conn: Connection) -> bool:
    return bool(getattr(conn.connection.driver_connection, "in_transaction", False))


def open_transaction(conn: Connection, isolation_level: str) -> OpenTransaction:
    sqlite = conn.dialect.name == "sqlite"
    if not sqlite:
        conn.execution_options(isolation_level=isolation_level)
    outer = conn.begin()
    explicit = sqlite and not _driver_in_transaction(conn)
    if explicit:
        conn.exec_driver_sql("BEGIN")
    return OpenTransaction(outer, explicit)


def ensure_active(opened: OpenTransaction) -> None:
    if not opened.outer.is_active:
        raise transaction_ended_error("The function")


def commit_transaction(
    conn: Connection,
    opened: OpenTransaction,
    checkpoint_insert: sa.Insert | None,
    options: dict[str, Any],
) -> None:
    """Write the checkpoint (if any) and commit, in the transaction the function used."""
    ensure_active(opened)
    if checkpoint_insert is not None:
        conn.execute(checkpoint_insert, execution_options=options)
    if opened.explicit:
        conn.exec_driver_sql("COMMIT")
    opened.outer.commit()


def abort_transaction(conn: Connection, opened: OpenTransaction) -> None:
    try:
        if opened.explicit and _driver_in_transaction(conn):
            conn.exec_driver_sql("ROLLBACK")
        conn.rollback()
    except Exception:  # the connection may be gone; the pool must not reuse it
        conn.invalidate()


def read_output(
    conn: Connection, table: sa.Table, workflow_id: str, function_id: int, options: dict[str, Any]
) -> RecordedOutput | None:
    try:
        row = conn.execute(
            select_output(table, workflow_id, function_id), execution_options=options
        ).first()
    finally:
        conn.rollback()
    return None if row is None else RecordedOutput(row[0])


def create_checkpoint_table(conn: Connection, table: sa.Table, schema: str) -> None:
    """Create the table (and on PostgreSQL its schema, when the table has the placeholder
    schema) unless it exists; a concurrent creator elsewhere is not an error."""
    options = schema_options(conn.dialect.name, schema)
    target_schema = options["schema_translate_map"][SCHEMA_PLACEHOLDER] if table.schema else None
    try:
        with conn.begin():
            if target_schema is not None:
                conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{target_schema}"')
            table.create(conn.execution_options(**options), checkfirst=True)
    except sa.exc.DBAPIError as exc:
        if not (is_unique_violation(exc) or has_table(conn, table, schema)):
            raise


def has_table(conn: Connection, table: sa.Table, schema: str) -> bool:
    options = schema_options(conn.dialect.name, schema)
    target_schema = options["schema_translate_map"][SCHEMA_PLACEHOLDER] if table.schema else None
    try:
        return sa.inspect(conn).has_table(table.name, schema=target_schema)
    finally:
        conn.rollback()
