"""Steps whose effect is a write of their own, committed together with the checkpoint.

Sending a message from a workflow, consuming one in ``recv``, setting an event,
appending to a stream: a crash must neither lose the write nor repeat it, so the
write and the step's checkpoint land together or not at all, and only while the
workflow is still PENDING.

- ``record_with``: the write runs in the checkpoint's transaction (SQLite, where a
  transaction costs no round trips).
- ``record_chained``: one statement, ``WITH checkpoint AS (INSERT ...) <write>``,
  the write selecting from the checkpoint (PostgreSQL: one round trip).

Both return ``(True, ours)``, or ``(False, theirs)`` when another execution of the
workflow recorded the step first, and raise ``StepNotRecorded`` when the workflow
is no longer PENDING, like ``StepStore.record``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .database import is_unique_violation
from .records import StepRecord
from .schema import operation_outputs, workflow_status
from .steps import StepNotRecorded, StepStore
from .workflows import now_ms

oo = operation_outputs


def checkpoint_statement(
    workflow_id: str,
    function_id: int,
    function_name: str,
    output: str | None,
    started_at_ms: int | None,
) -> Any:
    """INSERT of one checkpoint that only lands while the workflow is PENDING."""
    stamp = now_ms()
    values: list[Any] = [
        sa.literal(workflow_id, sa.Text),
        sa.literal(function_id, sa.Integer),
        sa.literal(function_name, sa.Text),
        sa.literal(output, sa.Text),
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
    return oo.insert().from_select(
        [
            oo.c.workflow_uuid,
            oo.c.function_id,
            oo.c.function_name,
            oo.c.output,
            oo.c.started_at_epoch_ms,
            oo.c.completed_at_epoch_ms,
        ],
        sa.select(*values).where(still_pending),
    )


def _prebuilt_checkpoint() -> Any:
    """``checkpoint_statement`` with bound parameters, built once (for the hot path)."""
    names = ("workflow_uuid", "function_id", "function_name", "output", "started", "completed")
    types: dict[str, Any] = {
        "function_id": sa.Integer(),
        "started": sa.BigInteger(),
        "completed": sa.BigInteger(),
    }
    params = [sa.bindparam(f"cp_{n}", type_=types.get(n, sa.Text())) for n in names]
    still_pending = (
        sa.select(workflow_status.c.workflow_uuid)
        .where(
            workflow_status.c.workflow_uuid == sa.bindparam("cp_workflow_uuid", type_=sa.Text()),
            workflow_status.c.status == "PENDING",
        )
        .exists()
    )
    return oo.insert().from_select(
        [
            oo.c.workflow_uuid,
            oo.c.function_id,
            oo.c.function_name,
            oo.c.output,
            oo.c.started_at_epoch_ms,
            oo.c.completed_at_epoch_ms,
        ],
        sa.select(*params).where(still_pending),
    )


_CHECKPOINT = _prebuilt_checkpoint()


def _theirs(steps: StepStore, exc: sa.exc.IntegrityError, workflow_id: str, fid: int) -> StepRecord:
    """After a failed write: the checkpoint another execution made, else re-raise."""
    if not is_unique_violation(exc):
        raise exc
    existing = steps.get(workflow_id, fid)
    if existing is None:
        raise exc
    return existing


def record_with(
    steps: StepStore,
    workflow_id: str,
    function_id: int,
    function_name: str,
    work: Callable[[Connection], str | None],
    *,
    started_at_ms: int | None = None,
) -> tuple[bool, StepRecord]:
    """Run ``work`` (which writes and returns the output text) and checkpoint it, in ONE
    transaction. An exception from ``work`` rolls everything back and propagates."""
    output: str | None = None
    try:
        with steps.db.transaction() as conn:
            output = work(conn)
            stamp = now_ms()
            params = {
                "cp_workflow_uuid": workflow_id,
                "cp_function_id": function_id,
                "cp_function_name": function_name,
                "cp_output": output,
                "cp_started": started_at_ms if started_at_ms is not None else stamp,
                "cp_completed": stamp,
            }
            if conn.execute(_CHECKPOINT, params).rowcount == 0:
                raise StepNotRecorded(workflow_id)
    except sa.exc.IntegrityError as exc:
        return False, _theirs(steps, exc, workflow_id, function_id)
    return True, StepRecord(function_id, function_name, output, None, None)


def record_chained(
    steps: StepStore,
    workflow_id: str,
    function_id: int,
    function_name: str,
    output: str | None,
    chain: Callable[[Any], Any],
    *,
    started_at_ms: int | None = None,
) -> tuple[bool, StepRecord]:
    """Checkpoint and write in ONE statement: ``chain(checkpoint_cte)`` builds the write,
    which must select from the CTE and return a row when it happens."""
    checkpoint = (
        checkpoint_statement(workflow_id, function_id, function_name, output, started_at_ms)
        .returning(oo.c.function_id)
        .cte("checkpoint")
    )
    stmt = chain(checkpoint).add_cte(checkpoint)
    try:
        with steps.db.connect() as conn:
            row = conn.execute(stmt).first()
    except sa.exc.IntegrityError as exc:
        return False, _theirs(steps, exc, workflow_id, function_id)
    if row is None:
        raise StepNotRecorded(workflow_id)
    return True, StepRecord(function_id, function_name, output, None, None)
