"""Rows of ``operation_outputs``: one checkpoint per completed step."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from .database import Database, is_unique_violation
from .records import StepRecord
from .schema import operation_outputs, workflow_status
from .workflows import now_ms

oo = operation_outputs


class StepNotRecorded(Exception):
    """The checkpoint was refused because the workflow is no longer PENDING."""


class StepStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def load(self, workflow_id: str) -> dict[int, StepRecord]:
        """All checkpoints of a workflow, read once when it resumes."""
        stmt = sa.select(
            oo.c.function_id, oo.c.function_name, oo.c.output, oo.c.error, oo.c.child_workflow_id
        ).where(oo.c.workflow_uuid == workflow_id)
        with self.db.connect() as conn:
            return {r[0]: StepRecord(r[0], r[1], r[2], r[3], r[4]) for r in conn.execute(stmt)}

    def get(self, workflow_id: str, function_id: int) -> StepRecord | None:
        stmt = sa.select(
            oo.c.function_id, oo.c.function_name, oo.c.output, oo.c.error, oo.c.child_workflow_id
        ).where(oo.c.workflow_uuid == workflow_id, oo.c.function_id == function_id)
        with self.db.connect() as conn:
            r = conn.execute(stmt).first()
        return None if r is None else StepRecord(r[0], r[1], r[2], r[3], r[4])

    def record(
        self,
        workflow_id: str,
        function_id: int,
        function_name: str,
        *,
        output: str | None = None,
        error: str | None = None,
        child_workflow_id: str | None = None,
        started_at_ms: int | None = None,
    ) -> tuple[bool, StepRecord]:
        """Checkpoint a step with one statement, only while the workflow is PENDING.

        Returns ``(True, ours)``, or ``(False, theirs)`` when another execution of the
        same workflow recorded this step first (first writer wins). Raises
        ``StepNotRecorded`` if the workflow was cancelled or finished meanwhile.
        """
        stamp = now_ms()
        values: list[Any] = [
            sa.literal(workflow_id, sa.Text),
            sa.literal(function_id, sa.Integer),
            sa.literal(function_name, sa.Text),
            sa.literal(output, sa.Text),
            sa.literal(error, sa.Text),
            sa.literal(child_workflow_id, sa.Text),
            sa.literal(started_at_ms if started_at_ms is not None else stamp, sa.BigInteger),
            sa.literal(stamp, sa.BigInteger),
        ]
        still_pending = (
            sa.select(workflow_status.c.workflow_uuid)
            .where(
                workflow_status.c.workflow_uuid == workflow_id,
                workflow_status.c.status == "PENDING",
            )
            .exists()
        )
        stmt = oo.insert().from_select(
            [
                oo.c.workflow_uuid,
                oo.c.function_id,
                oo.c.function_name,
                oo.c.output,
                oo.c.error,
                oo.c.child_workflow_id,
                oo.c.started_at_epoch_ms,
                oo.c.completed_at_epoch_ms,
            ],
            sa.select(*values).where(still_pending),
        )
        try:
            with self.db.connect() as conn:
                inserted = conn.execute(stmt).rowcount
        except sa.exc.IntegrityError as exc:
            if not is_unique_violation(exc):
                raise
            existing = self.get(workflow_id, function_id)
            if existing is None:
                raise
            return False, existing
        if inserted == 0:
            raise StepNotRecorded(workflow_id)
        return True, StepRecord(function_id, function_name, output, error, child_workflow_id)

    def copy_prefix(
        self, conn: Any, source_id: str, target_id: str, before_function_id: int
    ) -> None:
        """Copy the checkpoints of steps ``< before_function_id`` to another workflow (fork)."""
        cols = [
            oo.c.function_id,
            oo.c.function_name,
            oo.c.output,
            oo.c.error,
            oo.c.child_workflow_id,
            oo.c.started_at_epoch_ms,
            oo.c.completed_at_epoch_ms,
        ]
        select = sa.select(sa.literal(target_id, sa.Text), *cols).where(
            oo.c.workflow_uuid == source_id, oo.c.function_id < before_function_id
        )
        conn.execute(oo.insert().from_select([oo.c.workflow_uuid, *cols], select))
