"""Versioned, atomic migrations of the system database.

Each launch runs every migration newer than the recorded version inside one
transaction that first takes a lock (``pg_advisory_xact_lock`` on PostgreSQL,
``BEGIN IMMEDIATE`` on SQLite). Two processes launching on a new database at the
same moment therefore serialize, and the second finds the work done; a process
killed mid-migration leaves nothing half-applied because the DDL is transactional
on both databases.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .database import Database
from .schema import DASHBOARD_INDEXES, metadata, migrations_table

# An arbitrary constant that names "DBOS schema migration" among advisory locks.
_ADVISORY_LOCK_KEY = 0x0DB05C4E


def notify_channel(schema: str) -> str:
    return f"dbos_{schema}"


def _install_publish_function(conn: Connection, db: Database) -> None:
    """The trigger function that publishes only the changes someone waits for.

    Waiters on ``wf:<id>`` want an outcome (or a cancel), dispatchers want new work
    and freed slots. A start (INSERT) and a claim (ENQUEUED to PENDING) are neither,
    and every NOTIFY serializes its commit with all other notifying commits. The
    writes themselves stay single statements (one round trip each).
    """
    s = db.schema
    channel = notify_channel(s)
    conn.exec_driver_sql(
        f"""
        CREATE OR REPLACE FUNCTION "{s}".dbos_publish_change() RETURNS trigger AS $$
        BEGIN
          IF TG_TABLE_NAME = 'notifications' THEN
            PERFORM pg_notify('{channel}', 'msg:' || NEW.destination_uuid || '::' || NEW.topic);
          ELSIF TG_TABLE_NAME = 'workflow_events' THEN
            PERFORM pg_notify('{channel}', 'evt:' || NEW.workflow_uuid || '::' || NEW.key);
          ELSIF TG_TABLE_NAME = 'streams' THEN
            PERFORM pg_notify('{channel}', 'stream:' || NEW.workflow_uuid || '::' || NEW.key);
          ELSIF TG_TABLE_NAME = 'workflow_status' THEN
            IF TG_OP = 'INSERT' THEN
              IF NEW.status = 'ENQUEUED' AND NEW.queue_name IS NOT NULL THEN
                PERFORM pg_notify('{channel}', 'queue:' || NEW.queue_name);
              END IF;
            ELSIF NEW.status IS DISTINCT FROM OLD.status THEN
              IF NEW.status IN ('SUCCESS', 'ERROR', 'CANCELLED',
                                'MAX_RECOVERY_ATTEMPTS_EXCEEDED') THEN
                PERFORM pg_notify('{channel}', 'wf:' || NEW.workflow_uuid);
                IF NEW.queue_name IS NOT NULL THEN
                  PERFORM pg_notify('{channel}', 'queue:' || NEW.queue_name);
                END IF;
              ELSIF NEW.status = 'ENQUEUED' AND NEW.queue_name IS NOT NULL THEN
                -- Released by a process that cannot run it, or resumed onto a queue.
                PERFORM pg_notify('{channel}', 'queue:' || NEW.queue_name);
              END IF;
            END IF;
          END IF;
          RETURN NEW;
        END
        $$ LANGUAGE plpgsql
        """
    )


def _v1_initial(conn: Connection, db: Database) -> None:
    metadata.create_all(conn, checkfirst=True)
    if db.is_sqlite:
        return
    _install_publish_function(conn, db)
    s = db.schema
    for table, events in (
        ("notifications", "INSERT"),
        ("workflow_events", "INSERT OR UPDATE"),
        ("streams", "INSERT"),
        ("workflow_status", "INSERT OR UPDATE"),
    ):
        conn.exec_driver_sql(
            f'CREATE TRIGGER dbos_publish_{table} AFTER {events} ON "{s}".{table} '
            f'FOR EACH ROW EXECUTE FUNCTION "{s}".dbos_publish_change()'
        )


def _v2_fewer_notifications(conn: Connection, db: Database) -> None:
    """Databases created before the trigger stopped publishing starts and claims."""
    if not db.is_sqlite:
        _install_publish_function(conn, db)


def _v3_trace_context(conn: Connection, db: Database) -> None:
    """``workflow_status.trace_context``: the trace a workflow belongs to (observability).

    Databases created by v1 after the column was declared already have it.
    """
    schema = None if db.is_sqlite else db.schema
    columns = {c["name"] for c in sa.inspect(conn).get_columns("workflow_status", schema=schema)}
    if "trace_context" not in columns:
        table = "workflow_status" if db.is_sqlite else f'"{db.schema}".workflow_status'
        conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN trace_context TEXT")


def _v4_dashboard_indexes(conn: Connection, db: Database) -> None:
    """The indexes of the dashboard's pages (``schema.DASHBOARD_INDEXES``). Databases
    created by v1 after they were declared have them already."""
    for index in DASHBOARD_INDEXES:
        index.create(conn, checkfirst=True)


MIGRATIONS: list[Callable[[Connection, Database], None]] = [
    _v1_initial,
    _v2_fewer_notifications,
    _v3_trace_context,
    _v4_dashboard_indexes,
]
LATEST_VERSION = len(MIGRATIONS)


def current_version(db: Database) -> int:
    """The applied version, or 0 when the schema has never been created."""
    try:
        with db.connect() as conn:
            value = conn.execute(sa.select(sa.func.max(migrations_table.c.version))).scalar()
    except (sa.exc.OperationalError, sa.exc.ProgrammingError):
        return 0
    return int(value or 0)


def migrate(db: Database) -> int:
    """Bring the schema to ``LATEST_VERSION``; returns how many migrations ran."""
    if current_version(db) >= LATEST_VERSION:
        return 0
    with db.transaction() as conn:
        if not db.is_sqlite:
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_ADVISORY_LOCK_KEY})")
            conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{db.schema}"')
        migrations_table.create(conn, checkfirst=True)
        applied = int(
            conn.execute(sa.select(sa.func.max(migrations_table.c.version))).scalar() or 0
        )
        for version in range(applied + 1, LATEST_VERSION + 1):
            MIGRATIONS[version - 1](conn, db)
            conn.execute(
                migrations_table.insert().values(
                    version=version, applied_at=int(time.time() * 1000)
                )
            )
        return LATEST_VERSION - applied


def drop_all(db: Database) -> None:
    """Remove every system table (used by ``reset_system_database``)."""
    with db.transaction() as conn:
        if db.is_sqlite:
            for table in reversed(metadata.sorted_tables):
                conn.execute(sa.schema.DropTable(table, if_exists=True))
        else:
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_ADVISORY_LOCK_KEY})")
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{db.schema}" CASCADE')
