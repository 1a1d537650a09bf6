"""Rows of ``streams``: append-only, ordered values per (workflow, key).

Each value gets the next offset of its stream in the same INSERT that stores it.
Closing a stream appends a marker value that no serializer produces.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..error import DBOSNonExistentWorkflowError
from .database import Database, is_foreign_key_violation, is_unique_violation
from .schema import streams

st = streams

# Pickle-base64 never contains "_", and JSON text of a string is quoted; the
# client reads streams through this store too.
CLOSED_MARKER = "__DBOS_STREAM_CLOSED__"

# Concurrent writers on PostgreSQL may pick the same offset; the loser retries.
_MAX_OFFSET_RETRIES = 20


class StreamStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def append_after(self, checkpoint: Any, workflow_id: str, key: str, value: str) -> Any:
        """The append as the write of a chained step (see ``StepStore.record_chained``)."""
        select = sa.select(
            sa.literal(workflow_id, sa.Text),
            sa.literal(key, sa.Text),
            _next_offset(workflow_id, key),
            sa.literal(value, sa.Text),
        ).select_from(checkpoint)
        return (
            st.insert()
            .from_select(["workflow_uuid", "key", "offset", "value"], select)
            .returning(st.c.offset)
        )

    def append_in(self, conn: Connection, workflow_id: str, key: str, value: str) -> int:
        """Append one value (or ``CLOSED_MARKER``); returns its offset."""
        stmt = (
            st.insert()
            .values(
                workflow_uuid=workflow_id,
                key=key,
                offset=_next_offset(workflow_id, key),
                value=value,
            )
            .returning(st.c.offset)
        )
        try:
            return int(conn.execute(stmt).scalar_one())
        except sa.exc.IntegrityError as exc:
            if is_foreign_key_violation(exc):
                raise DBOSNonExistentWorkflowError(workflow_id, "cannot write its stream") from None
            raise

    def append(self, workflow_id: str, key: str, value: str) -> int:
        """Append outside a step transaction, retrying when a concurrent writer took the offset."""
        for attempt in range(_MAX_OFFSET_RETRIES):
            try:
                with self.db.connect() as conn:
                    return self.append_in(conn, workflow_id, key, value)
            except sa.exc.IntegrityError as exc:
                if not is_unique_violation(exc) or attempt == _MAX_OFFSET_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def read_from(self, workflow_id: str, key: str, offset: int) -> list[tuple[int, str]]:
        stmt = (
            sa.select(st.c.offset, st.c.value)
            .where(st.c.workflow_uuid == workflow_id, st.c.key == key, st.c.offset >= offset)
            .order_by(st.c.offset)
        )
        with self.db.connect() as conn:
            return [(int(r[0]), str(r[1])) for r in conn.execute(stmt)]


def _next_offset(workflow_id: str, key: str) -> Any:
    return (
        sa.select(sa.func.coalesce(sa.func.max(st.c.offset), -1) + 1)
        .where(st.c.workflow_uuid == workflow_id, st.c.key == key)
        .scalar_subquery()
    )
