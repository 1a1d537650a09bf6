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


_RECORD_COLUMNS = (
    "workflow_uuid",
    "function_id",
    "function_name",
    "output",
    "error",
    "child_workflow_id",
    "started_at_epoch_ms",
    "completed_at_epoch_ms",
)


def _build_record_statement() -> Any:
    """``INSERT ... SELECT <params> WHERE <workflow still PENDING>``, built once.

    The condition makes the checkpoint refuse itself when the workflow was cancelled
    (by any process) without costing a second round trip.
    """
    types = {
        "function_id": sa.Integer(),
        "started_at_epoch_ms": sa.BigInteger(),
        "completed_at_epoch_ms": sa.BigInteger(),
    }
    params = [
        sa.bindparam(f"p_{name}", type_=types.get(name, sa.Text())) for name in _RECORD_COLUMNS
    ]
    still_pending = (
        sa.select(workflow_status.c.workflow_uuid)
        .where(
            workflow_status.c.workflow_uuid == sa.bindparam("p_workflow_uuid", type_=sa.Text()),
            workflow_status.c.status == "PENDING",
        )
        .exists()
    )
    return oo.insert().from_select(
        [oo.c[name] for name in _RECORD_COLUMNS], sa.select(*params).where(still_pending)
    )


RECORD_STATEMENT = _build_record_statement()


def record_params(
    workflow_id: str,
    function_id: int,
    function_name: str,
    *,
    output: str | None = None,
    error: str | None = None,
    child_workflow_id: str | None = None,
    started_at_ms: int | None = None,
) -> dict[str, Any]:
    """The parameters of ``RECORD_STATEMENT`` for one checkpoint."""
    stamp = now_ms()
    return {
        "p_workflow_uuid": workflow_id,
        "p_function_id": function_id,
        "p_function_name": function_name,
        "p_output": output,
        "p_error": error,
        "p_child_workflow_id": child_workflow_id,
        "p_started_at_epoch_ms": started_at_ms if started_at_ms is not None else stamp,
        "p_completed_at_epoch_ms": stamp,
    }


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
        params = record_params(
            workflow_id,
            function_id,
            function_name,
            output=output,
            error=error,
            child_workflow_id=child_workflow_id,
            started_at_ms=started_at_ms,
        )
        try:
            with self.db.connect() as conn:
                inserted = conn.execute(RECORD_STATEMENT, params).rowcount
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
