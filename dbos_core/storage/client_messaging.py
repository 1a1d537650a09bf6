"""Messages, events and streams as the client needs them: plain reads and one-statement writes.

The runtime's messaging (``DBOS.send``/``recv``/``set_event``/streams) owns the
full semantics; these few functions read and write the same tables so that a
process without a runtime can talk to workflows. Values are stored already
serialized by the caller.
"""

from __future__ import annotations

import time

import sqlalchemy as sa

from ..error import DBOSNonExistentWorkflowError
from .database import Database, is_foreign_key_violation
from .schema import notifications, streams, workflow_events

# A message sent without a topic is stored under the empty topic.
DEFAULT_TOPIC = ""
# The value a workflow writes as the last entry of a stream it closes.
STREAM_CLOSED_SENTINEL = "__DBOS_STREAM_CLOSED__"


def topic_or_default(topic: str | None) -> str:
    return DEFAULT_TOPIC if topic is None else topic


def insert_message(
    db: Database, destination_id: str, message_text: str, topic: str | None, message_uuid: str
) -> bool:
    """Deliver one message (one statement); False when this ``message_uuid`` was sent already."""
    values = {
        "message_uuid": message_uuid,
        "destination_uuid": destination_id,
        "topic": topic_or_default(topic),
        "message": message_text,
        "created_at_epoch_ms": int(time.time() * 1000),
    }
    # The same message_uuid twice (an idempotent retry) lands once.
    stmt = _on_message_uuid_conflict(db, values)
    try:
        with db.connect() as conn:
            return bool(conn.execute(stmt).rowcount)
    except sa.exc.IntegrityError as exc:
        if is_foreign_key_violation(exc):
            raise DBOSNonExistentWorkflowError(destination_id, "cannot send to it") from None
        raise


def _on_message_uuid_conflict(db: Database, values: dict[str, object]) -> sa.Insert:
    module: object
    if db.is_sqlite:
        from sqlalchemy.dialects import sqlite as module
    else:
        from sqlalchemy.dialects import postgresql as module
    stmt = module.insert(notifications).values(values)  # type: ignore[attr-defined]
    return stmt.on_conflict_do_nothing(index_elements=["message_uuid"])  # type: ignore[no-any-return]


def read_event(db: Database, workflow_id: str, key: str) -> str | None:
    """The serialized value of an event, or None while it is not published."""
    stmt = sa.select(workflow_events.c.value).where(
        workflow_events.c.workflow_uuid == workflow_id, workflow_events.c.key == key
    )
    with db.connect() as conn:
        value = conn.execute(stmt).scalar()
    return None if value is None else str(value)


def read_stream_from(
    db: Database, workflow_id: str, key: str, from_offset: int
) -> list[tuple[int, str]]:
    """Stream entries at ``from_offset`` and after, in order (serialized values)."""
    stmt = (
        sa.select(streams.c.offset, streams.c.value)
        .where(
            streams.c.workflow_uuid == workflow_id,
            streams.c.key == key,
            streams.c.offset >= from_offset,
        )
        .order_by(streams.c.offset)
    )
    with db.connect() as conn:
        return [(int(r[0]), str(r[1])) for r in conn.execute(stmt)]
