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
from typing import TYPE_CHECKING, Any, NamedTuple

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

    def release(self, workflow_id: str, executor_id: str) -> bool:
        """Undo a claim: put a workflow this executor cannot run back on its queue."""
        stmt = (
            ws.update()
            .where(
                ws.c.workflow_uuid == workflow_id,
                ws.c.status == "PENDING",
                ws.c.executor_id == executor_id,
            )
            .values(
                status="ENQUEUED",
                owner_instance=None,
                started_at_epoch_ms=None,
                recovery_attempts=ws.c.recovery_attempts - 1,
                workflow_deadline_epoch_ms=sa.case(
                    (ws.c.workflow_timeout_ms.is_(None), ws.c.workflow_deadline_epoch_ms),
                    else_=None,
                ),
                updated_at=now_ms(),
            )
        )
        with self.db.connect() as conn:
            return conn.execute(stmt).rowcount > 0

    def has_enqueued(self, queue_name: str) -> bool:
        """Whether the queue holds any ENQUEUED workflow (a lock-free read)."""
        with self.db.connect() as conn:
            return (
                conn.execute(_statement(self.db, "any", _NO_SHAPE), {"q_name": queue_name}).first()
                is not None
            )

    def claim(
        self,
        limits: QueueLimits,
        executor_id: str,
        app_version: str | None,
        partition_key: str | None = None,
        owner: str | None = None,
        local_free: int | None = None,
        workflow_names: list[str] | None = None,
    ) -> ClaimResult:
        """Take as many ENQUEUED workflows as the limits allow and mark them PENDING here.

        ``local_free`` is how many more this process is willing to run (its worker
        slots as it knows them); the database count of PENDING rows still decides.
        ``workflow_names`` (the functions registered here) keeps a process from taking
        work it could not run, such as a web server that only enqueues.
        """
        budget = MAX_BATCH if local_free is None else min(MAX_BATCH, local_free)
        if budget <= 0:
            return ClaimResult([])
        params: dict[str, Any] = {
            "q_name": limits.name,
            "q_partition": partition_key,
            "q_version": app_version,
            "q_executor": executor_id,
            "q_owner": owner,
            "q_budget": budget,
            "q_worker_slots": limits.worker_concurrency,
            "q_names": workflow_names,
        }
        shape = _Shape(
            limits.partitioned, app_version is not None, False, workflow_names is not None
        )
        if limits.has_global_limit:
            return self._claim_locked(limits, shape, params, partition_key)
        # Only this process's own slots limit the claim: one statement does it all, the
        # count of our PENDING rows (recovered ones included) inside its LIMIT.
        shape = shape._replace(count_mine=limits.worker_concurrency is not None)
        params["q_now"] = now_ms()
        stmt = _statement(self.db, "take", shape)
        # On SQLite even one statement takes the write lock up front (BEGIN IMMEDIATE):
        # a read-then-write statement could not upgrade its lock after another commit.
        with self.db.transaction() if self.db.is_sqlite else self.db.connect() as conn:
            rows = list(conn.execute(stmt, params))
        return ClaimResult(_in_queue_order(rows))

    def _claim_locked(
        self,
        limits: QueueLimits,
        shape: _Shape,
        params: dict[str, Any],
        partition_key: str | None,
    ) -> ClaimResult:
        """Claim under a global limit: count and take in one serialized transaction."""
        budget = int(params["q_budget"])
        with self.db.transaction() as conn:
            if not self.db.is_sqlite:
                lock_name = f"dbos.queue:{limits.name}:{partition_key or ''}"
                conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:n, 0))"),
                    {"n": lock_name},
                )
            now = now_ms()
            params["q_now"] = now
            if limits.rate_limit is not None and limits.rate_period_ms is not None:
                params["q_window_start"] = now - limits.rate_period_ms
                started, oldest = conn.execute(_statement(self.db, "recent", shape), params).one()
                free = limits.rate_limit - int(started)
                if free <= 0:
                    return ClaimResult([], int(oldest) + limits.rate_period_ms + 1)
                budget = min(budget, free)
            if limits.concurrency is not None or limits.worker_concurrency is not None:
                pending_all, pending_mine = conn.execute(
                    _statement(self.db, "pending", shape), params
                ).one()
                if limits.concurrency is not None:
                    budget = min(budget, limits.concurrency - int(pending_all))
                if limits.worker_concurrency is not None:
                    budget = min(budget, limits.worker_concurrency - int(pending_mine or 0))
            if budget <= 0:
                return ClaimResult([])
            params["q_budget"] = budget
            rows = list(conn.execute(_statement(self.db, "take", shape), params))
        return ClaimResult(_in_queue_order(rows))

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


def _in_queue_order(rows: list[AnyRow]) -> list[AnyRow]:
    return sorted(rows, key=lambda r: (r._mapping["priority"], r._mapping["created_at"]))


class _Shape(NamedTuple):
    """What varies between claim statements (values are bound parameters)."""

    partitioned: bool
    versioned: bool
    count_mine: bool
    named: bool


_NO_SHAPE = _Shape(False, False, False, False)

# Claim statements are built once per dialect and shape: building them per claim
# cost more CPU than running them.
_STATEMENTS: dict[tuple[bool, str, _Shape], Any] = {}


def _statement(db: Database, kind: str, shape: _Shape) -> Any:
    key = (db.is_sqlite, kind, shape)
    stmt = _STATEMENTS.get(key)
    if stmt is None:
        stmt = _build(db.is_sqlite, kind, shape)
        _STATEMENTS[key] = stmt
    return stmt


def _build(is_sqlite: bool, kind: str, shape: _Shape) -> Any:
    scope: list[Any] = [ws.c.queue_name == sa.bindparam("q_name")]
    if shape.partitioned:
        scope.append(ws.c.queue_partition_key == sa.bindparam("q_partition"))
    if kind == "any":
        return sa.select(sa.literal(1)).where(*scope, ws.c.status == "ENQUEUED").limit(1)
    if kind == "recent":
        return sa.select(sa.func.count(), sa.func.min(ws.c.started_at_epoch_ms)).where(
            *scope, ws.c.started_at_epoch_ms >= sa.bindparam("q_window_start")
        )
    # This process's own running workflows (processes may share an executor ID).
    mine = ws.c.owner_instance == sa.bindparam("q_owner")
    if kind == "pending":
        return sa.select(sa.func.count(), sa.func.sum(sa.case((mine, 1), else_=0))).where(
            *scope, ws.c.status == "PENDING"
        )
    assert kind == "take"
    budget = sa.bindparam("q_budget", type_=sa.Integer)
    limit: Any = budget
    if shape.count_mine:
        running = (
            sa.select(sa.func.count())
            .where(*scope, ws.c.status == "PENDING", mine)
            .scalar_subquery()
        )
        free = sa.bindparam("q_worker_slots", type_=sa.Integer) - running
        limit = sa.case((free < budget, sa.case((free > 0, free), else_=0)), else_=budget)
    pick = (
        sa.select(ws.c.workflow_uuid)
        .where(*scope, ws.c.status == "ENQUEUED")
        .order_by(ws.c.priority.asc(), ws.c.created_at.asc(), ws.c.workflow_uuid.asc())
        .limit(limit)
    )
    if shape.named:
        pick = pick.where(ws.c.name.in_(sa.bindparam("q_names", expanding=True)))
    if shape.versioned:
        # Only code of this version may run what was enqueued (as recovery does).
        pick = pick.where(
            sa.or_(
                ws.c.application_version.is_(None),
                ws.c.application_version == sa.bindparam("q_version"),
            )
        )
    if not is_sqlite:
        # Rows another process is claiming right now are skipped, not waited for.
        pick = pick.with_for_update(skip_locked=True)
    # MATERIALIZED: evaluated once. Inlined into the IN, PostgreSQL may re-run a
    # LIMIT ... SKIP LOCKED subquery and take more rows than the limit.
    claimable = pick.cte("claimable").prefix_with("MATERIALIZED")
    now = sa.bindparam("q_now", type_=sa.BigInteger)
    return (
        ws.update()
        .where(
            ws.c.workflow_uuid.in_(sa.select(claimable.c.workflow_uuid)),
            ws.c.status == "ENQUEUED",
        )
        .values(
            status="PENDING",
            executor_id=sa.bindparam("q_executor"),
            owner_instance=sa.bindparam("q_owner"),
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
