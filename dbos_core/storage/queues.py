"""Claiming queued workflows: which ENQUEUED rows this process may start now.

A claim is one short write transaction that checks the queue's limits and flips
the chosen rows from ENQUEUED to PENDING under this executor's ID. Two processes
never take the same row: on PostgreSQL the rows are selected ``FOR UPDATE SKIP
LOCKED`` (so concurrent claimers pass each other by), and a queue with a global
limit (concurrency or rate) also takes a transaction-scoped advisory lock on its
name first, because counting PENDING rows and claiming new ones must not
interleave between processes or both would see the same free slots. On SQLite
the claim runs under ``BEGIN IMMEDIATE``: the whole database is write-locked, so
claims of all processes are serialized.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from .database import Database
from .records import StepRecord
from .schema import operation_outputs, workflow_status
from .workflows import AnyRow, now_ms

if TYPE_CHECKING:
    # A plain value class kept free of SQLAlchemy so the facade can import it cheaply.
    from ..queue_limits import QueueLimits

ws = workflow_status
oo = operation_outputs


@dataclass
class ClaimResult:
    rows: list[AnyRow]
    # When the rate limiter will next admit a task (epoch ms), if it blocked this claim.
    retry_at_ms: int | None = None


# Upper bound of rows taken in one claim when a queue sets no limit at all.
MAX_BATCH = 100


class QueueStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def partitions(self, queue_name: str) -> list[str | None]:
        """The partition keys that currently have ENQUEUED work on a partitioned queue."""
        stmt = (
            sa.select(ws.c.queue_partition_key)
            .where(ws.c.queue_name == queue_name, ws.c.status == "ENQUEUED")
            .distinct()
        )
        with self.db.connect() as conn:
            return [r[0] for r in conn.execute(stmt)]

    def claim(
        self,
        limits: QueueLimits,
        executor_id: str,
        app_version: str | None,
        partition_key: str | None = None,
        local_free: int | None = None,
    ) -> ClaimResult:
        """Take as many ENQUEUED workflows as the limits allow and mark them PENDING here.

        ``local_free`` is how many more this process is willing to run (its worker
        slots as it knows them); the database count of PENDING rows still decides.
        """
        budget = MAX_BATCH if local_free is None else min(MAX_BATCH, local_free)
        if budget <= 0:
            return ClaimResult([])
        scope: list[Any] = [ws.c.queue_name == limits.name]
        if limits.partitioned:
            scope.append(ws.c.queue_partition_key == partition_key)
        with self.db.transaction() as conn:
            if limits.has_global_limit and not self.db.is_sqlite:
                lock_name = f"dbos.queue:{limits.name}:{partition_key or ''}"
                conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:n, 0))"),
                    {"n": lock_name},
                )
            now = now_ms()
            if limits.rate_limit is not None and limits.rate_period_ms is not None:
                window_start = now - limits.rate_period_ms
                started, oldest = conn.execute(
                    sa.select(sa.func.count(), sa.func.min(ws.c.started_at_epoch_ms)).where(
                        *scope, ws.c.started_at_epoch_ms >= window_start
                    )
                ).one()
                free = limits.rate_limit - int(started)
                if free <= 0:
                    return ClaimResult([], int(oldest) + limits.rate_period_ms + 1)
                budget = min(budget, free)
            if limits.concurrency is not None or limits.worker_concurrency is not None:
                pending_all, pending_mine = conn.execute(
                    sa.select(
                        sa.func.count(),
                        sa.func.coalesce(
                            sa.func.sum(sa.case((ws.c.executor_id == executor_id, 1), else_=0)),
                            0,
                        ),
                    ).where(*scope, ws.c.status == "PENDING")
                ).one()
                if limits.concurrency is not None:
                    budget = min(budget, limits.concurrency - int(pending_all))
                if limits.worker_concurrency is not None:
                    budget = min(budget, limits.worker_concurrency - int(pending_mine))
            if budget <= 0:
                return ClaimResult([])
            pick = (
                sa.select(ws.c.workflow_uuid)
                .where(*scope, ws.c.status == "ENQUEUED")
                .order_by(ws.c.priority.asc(), ws.c.created_at.asc(), ws.c.workflow_uuid.asc())
                .limit(budget)
            )
            if app_version is not None:
                # Only code of this version may run what was enqueued (as recovery does).
                pick = pick.where(
                    sa.or_(
                        ws.c.application_version.is_(None),
                        ws.c.application_version == app_version,
                    )
                )
            if not self.db.is_sqlite:
                pick = pick.with_for_update(skip_locked=True)
            ids = list(conn.execute(pick).scalars())
            if not ids:
                return ClaimResult([])
            stmt = (
                ws.update()
                .where(ws.c.workflow_uuid.in_(ids), ws.c.status == "ENQUEUED")
                .values(
                    status="PENDING",
                    executor_id=executor_id,
                    started_at_epoch_ms=now,
                    # Timeouts of enqueued workflows run from dequeue (start-to-completion).
                    workflow_deadline_epoch_ms=sa.case(
                        (ws.c.workflow_timeout_ms.is_(None), ws.c.workflow_deadline_epoch_ms),
                        else_=ws.c.workflow_timeout_ms + now,
                    ),
                    recovery_attempts=ws.c.recovery_attempts + 1,
                    updated_at=now,
                )
                .returning(*ws.c)
            )
            rows = list(conn.execute(stmt))
        rows.sort(key=lambda r: (r._mapping["priority"], r._mapping["created_at"]))
        return ClaimResult(rows)

    def load_steps(self, workflow_ids: list[str]) -> dict[str, dict[int, StepRecord]]:
        """Checkpoints of several workflows in one query (a claimed batch)."""
        found: dict[str, dict[int, StepRecord]] = {wid: {} for wid in workflow_ids}
        if not workflow_ids:
            return found
        stmt = sa.select(
            oo.c.workflow_uuid,
            oo.c.function_id,
            oo.c.function_name,
            oo.c.output,
            oo.c.error,
            oo.c.child_workflow_id,
        ).where(oo.c.workflow_uuid.in_(workflow_ids))
        with self.db.connect() as conn:
            for r in conn.execute(stmt):
                found[r[0]][r[1]] = StepRecord(r[1], r[2], r[3], r[4], r[5])
        return found
