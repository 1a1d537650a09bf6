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
from .schema import operation_outputs
from .steps import RECORD_STATEMENT, StepNotRecorded, StepStore, record_params

oo = operation_outputs


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
            params = record_params(
                workflow_id, function_id, function_name, output=output, started_at_ms=started_at_ms
            )
            if conn.execute(RECORD_STATEMENT, params).rowcount == 0:
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
    checkpoint = RECORD_STATEMENT.returning(oo.c.function_id).cte("checkpoint")
    stmt = chain(checkpoint).add_cte(checkpoint)
    params = record_params(
        workflow_id, function_id, function_name, output=output, started_at_ms=started_at_ms
    )
    try:
        with steps.db.connect() as conn:
            row = conn.execute(stmt, params).first()
    except sa.exc.IntegrityError as exc:
        return False, _theirs(steps, exc, workflow_id, function_id)
    if row is None:
        raise StepNotRecorded(workflow_id)
    return True, StepRecord(function_id, function_name, output, None, None)
