"""Rows of ``notifications`` (messages sent to workflows) and ``workflow_events``.

The writes a workflow makes as one of its steps (sending a message, setting an
event, consuming a message) take a ``Connection`` so the caller can commit them
together with the step's checkpoint (``StepStore.record_with``).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..error import DBOSNonExistentWorkflowError
from .database import Database, is_foreign_key_violation
from .schema import notifications, workflow_events
from .workflows import now_ms

nt = notifications
ev = workflow_events


def _dialect_insert(db: Database, table: sa.Table) -> Any:
    module: Any
    if db.is_sqlite:
        from sqlalchemy.dialects import sqlite as module
    else:
        from sqlalchemy.dialects import postgresql as module
    return module.insert(table)


def _bp(name: str, type_: Any = None) -> Any:
    # Prefixed: names of the table's columns are reserved in INSERT and UPDATE.
    return sa.bindparam(f"p_{name}", type_=type_ if type_ is not None else sa.Text())


def _params(**values: Any) -> dict[str, Any]:
    return {f"p_{k}": v for k, v in values.items()}


class MessageStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        # The hot statements, built once with bound parameters (building one per
        # call costs more than executing it on SQLite).
        self._insert_message = (
            _dialect_insert(db, nt)
            .values(
                message_uuid=_bp("message_uuid"),
                destination_uuid=_bp("destination_uuid"),
                topic=_bp("topic"),
                message=_bp("message"),
                created_at_epoch_ms=_bp("created_at", sa.BigInteger()),
            )
            .on_conflict_do_nothing(index_elements=[nt.c.message_uuid])
        )
        unread = (
            nt.c.destination_uuid == _bp("destination_uuid"),
            nt.c.topic == _bp("topic"),
            nt.c.consumed_at_epoch_ms.is_(None),
        )
        oldest = sa.select(nt.c.seq).where(*unread).order_by(nt.c.seq).limit(1).scalar_subquery()
        self._consume = (
            nt.update()
            .where(nt.c.seq == oldest, nt.c.consumed_at_epoch_ms.is_(None))
            .values(consumed_at_epoch_ms=_bp("now", sa.BigInteger()))
            .returning(nt.c.message)
        )
        self._has_unread = sa.select(nt.c.seq).where(*unread).limit(1)
        self._get_event = sa.select(ev.c.value).where(
            ev.c.workflow_uuid == _bp("workflow_uuid"), ev.c.key == _bp("key")
        )

    # -- messages ---------------------------------------------------------------

    def send_in(
        self, conn: Connection, destination_id: str, topic: str, message: str, message_uuid: str
    ) -> bool:
        """Queue a message unless one with the same ``message_uuid`` exists (idempotent).

        Returns True when this call stored it. A destination that does not exist
        raises ``DBOSNonExistentWorkflowError``.
        """
        params = _params(
            message_uuid=message_uuid,
            destination_uuid=destination_id,
            topic=topic,
            message=message,
            created_at=now_ms(),
        )
        try:
            return bool(conn.execute(self._insert_message, params).rowcount)
        except sa.exc.IntegrityError as exc:
            if is_foreign_key_violation(exc):
                raise DBOSNonExistentWorkflowError(
                    destination_id, "cannot send a message to it"
                ) from None
            raise

    def send_after(
        self, checkpoint: Any, destination_id: str, topic: str, message: str, message_uuid: str
    ) -> Any:
        """The send as the write of a chained step (see ``StepStore.record_chained``)."""
        select = sa.select(
            sa.literal(message_uuid, sa.Text),
            sa.literal(destination_id, sa.Text),
            sa.literal(topic, sa.Text),
            sa.literal(message, sa.Text),
            sa.literal(now_ms(), sa.BigInteger),
        ).select_from(checkpoint)
        return (
            _dialect_insert(self.db, nt)
            .from_select(
                ["message_uuid", "destination_uuid", "topic", "message", "created_at_epoch_ms"],
                select,
            )
            .on_conflict_do_nothing(index_elements=[nt.c.message_uuid])
            .returning(nt.c.seq)
        )

    def send(self, destination_id: str, topic: str, message: str, message_uuid: str) -> bool:
        try:
            with self.db.connect() as conn:
                return self.send_in(conn, destination_id, topic, message, message_uuid)
        except sa.exc.IntegrityError as exc:
            # On PostgreSQL the FK check can surface outside the statement's own call.
            if is_foreign_key_violation(exc):
                raise DBOSNonExistentWorkflowError(
                    destination_id, "cannot send a message to it"
                ) from None
            raise

    def consume_in(self, conn: Connection, destination_id: str, topic: str) -> str | None:
        """Take the oldest unread message of (destination, topic); None if there is none."""
        params = _params(destination_uuid=destination_id, topic=topic, now=now_ms())
        value = conn.execute(self._consume, params).scalar()
        return None if value is None else str(value)

    def consume(self, destination_id: str, topic: str) -> str | None:
        with self.db.connect() as conn:
            return self.consume_in(conn, destination_id, topic)

    def consume_into_step_pg(
        self, workflow_id: str, topic: str, function_id: int, function_name: str, started_ms: int
    ) -> str | None:
        """PostgreSQL: take the oldest message and checkpoint it as the step, in ONE statement.

        Returns the message text, or None when there is none (or the workflow is no
        longer PENDING). Raises the unique violation when the step is already recorded;
        the statement then changed nothing.
        """
        s = self.db.schema
        stamp = now_ms()
        stmt = sa.text(
            f"""
            WITH taken AS (
              UPDATE "{s}".notifications SET consumed_at_epoch_ms = :now
              WHERE seq = (
                  SELECT seq FROM "{s}".notifications
                  WHERE destination_uuid = :wid AND topic = :topic
                    AND consumed_at_epoch_ms IS NULL
                  ORDER BY seq LIMIT 1)
                AND consumed_at_epoch_ms IS NULL
                AND EXISTS (SELECT 1 FROM "{s}".workflow_status
                            WHERE workflow_uuid = :wid AND status = 'PENDING')
              RETURNING message)
            INSERT INTO "{s}".operation_outputs (workflow_uuid, function_id, function_name,
                output, started_at_epoch_ms, completed_at_epoch_ms)
            SELECT :wid, :fid, :name, message, :started, :now FROM taken
            RETURNING output
            """
        )
        params = {
            "now": stamp,
            "wid": workflow_id,
            "topic": topic,
            "fid": function_id,
            "name": function_name,
            "started": started_ms,
        }
        with self.db.connect() as conn:
            value = conn.execute(stmt, params).scalar()
        return None if value is None else str(value)

    def has_unread(self, destination_id: str, topic: str) -> bool:
        params = _params(destination_uuid=destination_id, topic=topic)
        with self.db.connect() as conn:
            return conn.execute(self._has_unread, params).first() is not None

    # -- events -----------------------------------------------------------------

    def set_event_in(self, conn: Connection, workflow_id: str, key: str, value: str) -> None:
        stmt = _dialect_insert(self.db, ev).values(workflow_uuid=workflow_id, key=key, value=value)
        stmt = stmt.on_conflict_do_update(
            index_elements=[ev.c.workflow_uuid, ev.c.key], set_={"value": stmt.excluded.value}
        )
        conn.execute(stmt)

    def set_event_after(self, checkpoint: Any, workflow_id: str, key: str, value: str) -> Any:
        """The upsert as the write of a chained step (see ``StepStore.record_chained``)."""
        select = sa.select(
            sa.literal(workflow_id, sa.Text), sa.literal(key, sa.Text), sa.literal(value, sa.Text)
        ).select_from(checkpoint)
        stmt = _dialect_insert(self.db, ev).from_select(["workflow_uuid", "key", "value"], select)
        return stmt.on_conflict_do_update(
            index_elements=[ev.c.workflow_uuid, ev.c.key], set_={"value": stmt.excluded.value}
        ).returning(ev.c.key)

    def set_event(self, workflow_id: str, key: str, value: str) -> None:
        with self.db.connect() as conn:
            self.set_event_in(conn, workflow_id, key, value)

    def get_event(self, workflow_id: str, key: str) -> str | None:
        """The stored (serialized) value, or None when the event was never set."""
        with self.db.connect() as conn:
            value = conn.execute(
                self._get_event, _params(workflow_uuid=workflow_id, key=key)
            ).scalar()
        return None if value is None else str(value)

    def get_all_events(self, workflow_id: str) -> dict[str, str]:
        stmt = (
            sa.select(ev.c.key, ev.c.value)
            .where(ev.c.workflow_uuid == workflow_id)
            .order_by(ev.c.key)
        )
        with self.db.connect() as conn:
            return {str(r[0]): str(r[1]) for r in conn.execute(stmt)}
