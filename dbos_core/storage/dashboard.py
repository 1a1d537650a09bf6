"""The reads behind the workflow dashboard, each one served by an index.

Every query here is bounded: a page of the workflow list is one index range scan
(``created_at`` newest first, or ``(filter column, created_at)``) that stops after
``limit + 1`` rows, and pages are keyset cursors (the last row's
``(created_at, workflow_uuid)``), so page 1,000 costs what page 1 costs. Nothing
counts a whole table. Queue and health figures read only active workflows (the
``status`` index) or the last hour (partial indexes on dispatch time and on
recovered workflows); see ``DASHBOARD_INDEXES`` and the migration that adds them.

Nothing is deserialized here: stored values go to ``safe_display`` as text.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .database import Database
from .schema import operation_outputs, streams, workflow_events, workflow_status

T = TypeVar("T")
ws = workflow_status
oo = operation_outputs

ACTIVE_STATUSES = ("PENDING", "ENQUEUED")
HOUR_MS = 3_600_000
MINUTE_MS = 60_000

# The columns a list row shows (never the stored inputs or outputs: they can be large).
_LIST_COLUMNS = (
    ws.c.workflow_uuid,
    ws.c.status,
    ws.c.name,
    ws.c.queue_name,
    ws.c.authenticated_user,
    ws.c.executor_id,
    ws.c.application_version,
    ws.c.created_at,
    ws.c.updated_at,
    ws.c.recovery_attempts,
)


def _read(db: Database, work: Callable[[Connection], T]) -> T:
    with db.connect() as conn:
        return work(conn)


@dataclass(frozen=True)
class Cursor:
    """A position in the list: the ``(created_at, workflow_uuid)`` of a row."""

    created_at: int
    workflow_id: str


@dataclass
class WorkflowQuery:
    """The filters of the workflow list (all optional) and the page wanted."""

    status: str | None = None
    name: str | None = None
    queue_name: str | None = None
    user: str | None = None
    executor_id: str | None = None
    app_version: str | None = None
    id_prefix: str | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    limit: int = 50
    # Rows strictly older than ``before``, or strictly newer than ``after`` (not both).
    before: Cursor | None = None
    after: Cursor | None = None


@dataclass
class WorkflowPage:
    rows: list[Any]
    has_older: bool
    has_newer: bool


def _id_prefix_condition(db: Database, prefix: str) -> Any:
    """``workflow_uuid`` starts with ``prefix``, in a form the dialect's index serves.

    SQLite compares text bytewise, so a range on the primary key is exact. On
    PostgreSQL the default collation does not order by bytes; ``LIKE 'prefix%'`` is
    served by the ``text_pattern_ops`` index instead.
    """
    if db.is_sqlite:
        return sa.and_(ws.c.workflow_uuid >= prefix, ws.c.workflow_uuid < prefix + "\U0010ffff")
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return ws.c.workflow_uuid.like(escaped + "%", escape="\\")


def _filters(db: Database, q: WorkflowQuery) -> list[Any]:
    conditions: list[Any] = []
    equal = (
        (ws.c.status, q.status),
        (ws.c.name, q.name),
        (ws.c.queue_name, q.queue_name),
        (ws.c.authenticated_user, q.user),
        (ws.c.executor_id, q.executor_id),
        (ws.c.application_version, q.app_version),
    )
    conditions.extend(column == value for column, value in equal if value is not None)
    if q.id_prefix:
        conditions.append(_id_prefix_condition(db, q.id_prefix))
    if q.start_ms is not None:
        conditions.append(ws.c.created_at >= q.start_ms)
    if q.end_ms is not None:
        conditions.append(ws.c.created_at <= q.end_ms)
    return conditions


def _older_than(cursor: Cursor) -> Any:
    # The first term is what the index range uses; the second drops the cursor row
    # and its equals in time that sort after it.
    return sa.and_(
        ws.c.created_at <= cursor.created_at,
        sa.or_(ws.c.created_at < cursor.created_at, ws.c.workflow_uuid < cursor.workflow_id),
    )


def _newer_than(cursor: Cursor) -> Any:
    return sa.and_(
        ws.c.created_at >= cursor.created_at,
        sa.or_(ws.c.created_at > cursor.created_at, ws.c.workflow_uuid > cursor.workflow_id),
    )


def list_page(db: Database, q: WorkflowQuery) -> WorkflowPage:
    """One page of the list, newest first, and whether pages exist on either side."""
    conditions = _filters(db, q)
    newest_first = q.after is None
    if q.before is not None:
        conditions.append(_older_than(q.before))
    if q.after is not None:
        conditions.append(_newer_than(q.after))
    if newest_first:
        order = (ws.c.created_at.desc(), ws.c.workflow_uuid.desc())
    else:
        order = (ws.c.created_at.asc(), ws.c.workflow_uuid.asc())
    stmt = sa.select(*_LIST_COLUMNS).where(*conditions).order_by(*order).limit(q.limit + 1)
    rows = list(_read(db, lambda conn: conn.execute(stmt).all()))
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    if newest_first:
        return WorkflowPage(rows, has_older=more, has_newer=q.before is not None)
    rows.reverse()
    return WorkflowPage(rows, has_older=True, has_newer=more)


def count_newer(db: Database, q: WorkflowQuery, newest: Cursor, cap: int = 100) -> int:
    """How many rows matching ``q`` are newer than ``newest`` (counted up to ``cap``)."""
    conditions = [*_filters(db, q), _newer_than(newest)]
    inner = sa.select(ws.c.workflow_uuid).where(*conditions).limit(cap).subquery()
    stmt = sa.select(sa.func.count()).select_from(inner)
    return int(_read(db, lambda conn: conn.execute(stmt).scalar()) or 0)


def rows_by_id(db: Database, workflow_ids: Sequence[str]) -> list[Any]:
    """The list columns of these workflows (a live page re-reads its rows)."""
    if not workflow_ids:
        return []
    stmt = sa.select(*_LIST_COLUMNS).where(ws.c.workflow_uuid.in_(list(workflow_ids)))
    return list(_read(db, lambda conn: conn.execute(stmt).all()))


# -- one workflow -------------------------------------------------------------------


def workflow_row(db: Database, workflow_id: str) -> Any:
    stmt = sa.select(ws).where(ws.c.workflow_uuid == workflow_id)
    return _read(db, lambda conn: conn.execute(stmt).first())


def step_rows(db: Database, workflow_id: str) -> list[Any]:
    """Every recorded step with its times, in order (the primary key serves it)."""
    stmt = (
        sa.select(
            oo.c.function_id,
            oo.c.function_name,
            oo.c.output,
            oo.c.error,
            oo.c.child_workflow_id,
            oo.c.started_at_epoch_ms,
            oo.c.completed_at_epoch_ms,
        )
        .where(oo.c.workflow_uuid == workflow_id)
        .order_by(oo.c.function_id)
    )
    return list(_read(db, lambda conn: conn.execute(stmt).all()))


def child_rows(db: Database, workflow_id: str, limit: int = 200) -> list[Any]:
    """Workflows started by this one (``ix_workflow_status_parent``)."""
    stmt = (
        sa.select(ws.c.workflow_uuid, ws.c.name, ws.c.status, ws.c.created_at)
        .where(ws.c.parent_workflow_id == workflow_id)
        .order_by(ws.c.created_at, ws.c.workflow_uuid)
        .limit(limit)
    )
    return list(_read(db, lambda conn: conn.execute(stmt).all()))


def fork_rows(db: Database, workflow_id: str, limit: int = 50) -> list[Any]:
    """Workflows forked from this one (rare; the scan is bounded by ``limit``)."""
    stmt = (
        sa.select(ws.c.workflow_uuid, ws.c.name, ws.c.status, ws.c.created_at)
        .where(ws.c.forked_from == workflow_id)
        .order_by(ws.c.created_at.desc())
        .limit(limit)
    )
    return list(_read(db, lambda conn: conn.execute(stmt).all()))


def event_rows(db: Database, workflow_id: str) -> list[Any]:
    ev = workflow_events
    stmt = (
        sa.select(ev.c.key, ev.c.value).where(ev.c.workflow_uuid == workflow_id).order_by(ev.c.key)
    )
    return list(_read(db, lambda conn: conn.execute(stmt).all()))


def stream_rows(db: Database, workflow_id: str, per_stream: int = 20) -> list[Any]:
    """``(key, offset, value)`` of the first ``per_stream`` values of each stream."""
    st = streams
    stmt = (
        sa.select(st.c.key, st.c.offset, st.c.value)
        .where(st.c.workflow_uuid == workflow_id, st.c.offset < per_stream)
        .order_by(st.c.key, st.c.offset)
    )
    return list(_read(db, lambda conn: conn.execute(stmt).all()))


def stream_sizes(db: Database, workflow_id: str) -> dict[str, int]:
    st = streams
    stmt = (
        sa.select(st.c.key, sa.func.count())
        .where(st.c.workflow_uuid == workflow_id)
        .group_by(st.c.key)
    )
    return {k: int(n) for k, n in _read(db, lambda conn: conn.execute(stmt).all())}


def workflow_fingerprint(db: Database, workflow_id: str) -> tuple[Any, ...]:
    """What changes when anything shown about a workflow changes (for live pages)."""

    def read(conn: Connection) -> tuple[Any, ...]:
        head = conn.execute(
            sa.select(ws.c.status, ws.c.updated_at).where(ws.c.workflow_uuid == workflow_id)
        ).first()
        steps = conn.execute(
            sa.select(sa.func.count(), sa.func.max(oo.c.completed_at_epoch_ms)).where(
                oo.c.workflow_uuid == workflow_id
            )
        ).first()
        events = conn.execute(
            sa.select(sa.func.count()).where(workflow_events.c.workflow_uuid == workflow_id)
        ).scalar()
        values = conn.execute(
            sa.select(sa.func.count()).where(streams.c.workflow_uuid == workflow_id)
        ).scalar()
        children = conn.execute(
            sa.select(sa.func.count(), sa.func.max(ws.c.updated_at)).where(
                ws.c.parent_workflow_id == workflow_id
            )
        ).first()
        return (tuple(head or ()), tuple(steps or ()), events, values, tuple(children or ()))

    return _read(db, read)


# -- queues ---------------------------------------------------------------------------


@dataclass
class QueueActivity:
    name: str
    enqueued: int = 0
    pending: int = 0
    oldest_enqueued_id: str | None = None
    oldest_enqueued_at: int | None = None
    # Per minute of the last hour: (minute start ms, dispatched, mean latency ms, max latency ms)
    minutes: list[tuple[int, int, float, int]] | None = None


def queue_activity(db: Database, now_ms: int | None = None) -> dict[str, QueueActivity]:
    """Per queue: depth, running, the oldest waiting workflow, and the last hour's
    dispatches per minute with their latency (enqueue to dequeue)."""
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    since = now - HOUR_MS
    counts = (
        sa.select(ws.c.queue_name, ws.c.status, sa.func.count(), sa.func.min(ws.c.created_at))
        .where(ws.c.status.in_(ACTIVE_STATUSES), ws.c.queue_name.is_not(None))
        .group_by(ws.c.queue_name, ws.c.status)
    )
    minute = (ws.c.started_at_epoch_ms // MINUTE_MS).label("minute")
    latency = ws.c.started_at_epoch_ms - ws.c.created_at
    dispatched = (
        sa.select(
            ws.c.queue_name,
            minute,
            sa.func.count(),
            sa.func.avg(latency),
            sa.func.max(latency),
        )
        .where(ws.c.queue_name.is_not(None), ws.c.started_at_epoch_ms >= since)
        .group_by(ws.c.queue_name, minute)
    )

    def oldest_id(conn: Connection, queue: str, at: int) -> str | None:
        stmt = (
            sa.select(ws.c.workflow_uuid)
            .where(ws.c.status == "ENQUEUED", ws.c.queue_name == queue, ws.c.created_at == at)
            .limit(1)
        )
        value = conn.execute(stmt).scalar()
        return None if value is None else str(value)

    def read(conn: Connection) -> dict[str, QueueActivity]:
        found: dict[str, QueueActivity] = {}
        for queue, status, count, oldest in conn.execute(counts).all():
            entry = found.setdefault(queue, QueueActivity(queue))
            if status == "ENQUEUED":
                entry.enqueued = int(count)
                entry.oldest_enqueued_at = int(oldest)
                entry.oldest_enqueued_id = oldest_id(conn, queue, int(oldest))
            else:
                entry.pending = int(count)
        for queue, minute_index, count, mean, worst in conn.execute(dispatched).all():
            entry = found.setdefault(queue, QueueActivity(queue))
            if entry.minutes is None:
                entry.minutes = []
            entry.minutes.append(
                (int(minute_index) * MINUTE_MS, int(count), float(mean or 0), int(worst or 0))
            )
        return found

    found = _read(db, read)
    for entry in found.values():
        if entry.minutes is not None:
            entry.minutes.sort()
    return found


# -- schedules and health -----------------------------------------------------------


def latest_runs(db: Database, name: str, limit: int = 5) -> list[Any]:
    """The newest workflows of one function (``ix_workflow_status_name_created``)."""
    stmt = (
        sa.select(ws.c.workflow_uuid, ws.c.status, ws.c.created_at, ws.c.updated_at)
        .where(ws.c.name == name)
        .order_by(ws.c.created_at.desc())
        .limit(limit)
    )
    return list(_read(db, lambda conn: conn.execute(stmt).all()))


@dataclass
class Health:
    reachable: bool
    latency_ms: float | None
    error: str | None = None
    # (executor_id, owner_instance, PENDING workflows it owns)
    owners: list[tuple[str | None, str | None, int]] | None = None
    # (application_version, active workflows)
    versions: list[tuple[str | None, int]] | None = None
    # Workflows run again after their process died, last changed in the past hour.
    recovered_last_hour: int = 0
    # Workflows that ran out of recovery attempts, last changed in the past hour.
    max_recovery_last_hour: int = 0
    # Workflows created in the past hour that ended in ERROR.
    errors_last_hour: int = 0


def health(db: Database, now_ms: int | None = None) -> Health:
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    since = now - HOUR_MS
    owners = (
        sa.select(ws.c.executor_id, ws.c.owner_instance, sa.func.count())
        .where(ws.c.status == "PENDING")
        .group_by(ws.c.executor_id, ws.c.owner_instance)
        .order_by(ws.c.executor_id)
    )
    versions = (
        sa.select(ws.c.application_version, sa.func.count())
        .where(ws.c.status.in_(ACTIVE_STATUSES))
        .group_by(ws.c.application_version)
    )
    recovered = sa.select(sa.func.count()).where(
        ws.c.recovery_attempts > 1, ws.c.updated_at >= since
    )
    exhausted = sa.select(sa.func.count()).where(
        ws.c.status == "MAX_RECOVERY_ATTEMPTS_EXCEEDED", ws.c.updated_at >= since
    )
    errors = sa.select(sa.func.count()).where(ws.c.status == "ERROR", ws.c.created_at >= since)

    def read(conn: Connection) -> Health:
        started = time.perf_counter()
        conn.execute(sa.text("SELECT 1"))
        latency = (time.perf_counter() - started) * 1000
        return Health(
            reachable=True,
            latency_ms=latency,
            owners=[(e, o, int(n)) for e, o, n in conn.execute(owners).all()],
            versions=[(v, int(n)) for v, n in conn.execute(versions).all()],
            recovered_last_hour=int(conn.execute(recovered).scalar() or 0),
            max_recovery_last_hour=int(conn.execute(exhausted).scalar() or 0),
            errors_last_hour=int(conn.execute(errors).scalar() or 0),
        )

    try:
        return _read(db, read)
    except sa.exc.SQLAlchemyError as exc:
        return Health(reachable=False, latency_ms=None, error=type(exc).__name__)
