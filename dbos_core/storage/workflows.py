"""Rows of ``workflow_status``: creating, finishing, reading and listing workflows."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from ..error import DBOSException, DBOSQueueDeduplicatedError
from ..serialization import Serializer, deserialize_error, deserialize_value
from ..types import ALL_STATUSES, TERMINAL_STATUSES, WorkflowStatus
from .database import Database, is_unique_violation
from .records import ANY_OWNER
from .schema import operation_outputs, workflow_status

ws = workflow_status
# SQLAlchemy's Row is generic over its column types; these rows are read by name.
AnyRow = Row[Any, Any, Any, Any]


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class NewWorkflow:
    """Everything stored when a workflow is created (already serialized)."""

    workflow_id: str
    name: str
    status: str
    inputs: str
    executor_id: str
    application_version: str | None
    application_id: str | None = None
    class_name: str | None = None
    config_name: str | None = None
    authenticated_user: str | None = None
    assumed_role: str | None = None
    authenticated_roles: list[str] | None = None
    request_id: str | None = None
    queue_name: str | None = None
    queue_partition_key: str | None = None
    deduplication_id: str | None = None
    priority: int = 0
    workflow_timeout_ms: int | None = None
    workflow_deadline_epoch_ms: int | None = None
    parent_workflow_id: str | None = None
    forked_from: str | None = None
    max_recovery_attempts: int | None = None
    owner_instance: str | None = None
    created_at: int | None = None
    # W3C traceparent of the trace this workflow belongs to (observability).
    trace_context: str | None = None

    def values(self) -> dict[str, Any]:
        stamp = self.created_at or now_ms()
        return {
            "workflow_uuid": self.workflow_id,
            "status": self.status,
            "name": self.name,
            "class_name": self.class_name,
            "config_name": self.config_name,
            "authenticated_user": self.authenticated_user,
            "assumed_role": self.assumed_role,
            "authenticated_roles": None
            if self.authenticated_roles is None
            else json.dumps(self.authenticated_roles),
            "request_id": self.request_id,
            "inputs": self.inputs,
            "executor_id": self.executor_id,
            "application_version": self.application_version,
            "application_id": self.application_id,
            "created_at": stamp,
            "updated_at": stamp,
            "recovery_attempts": 1 if self.status == "PENDING" else 0,
            "queue_name": self.queue_name,
            "queue_partition_key": self.queue_partition_key,
            "deduplication_id": self.deduplication_id,
            "priority": self.priority,
            "workflow_timeout_ms": self.workflow_timeout_ms,
            "workflow_deadline_epoch_ms": self.workflow_deadline_epoch_ms,
            "started_at_epoch_ms": stamp if self.status == "PENDING" else None,
            "parent_workflow_id": self.parent_workflow_id,
            "forked_from": self.forked_from,
            "max_recovery_attempts": self.max_recovery_attempts,
            "owner_instance": self.owner_instance if self.status == "PENDING" else None,
            "trace_context": self.trace_context,
        }


@dataclass
class ChildLink:
    """The parent's step that records the start of a child workflow."""

    parent_workflow_id: str
    function_id: int
    function_name: str


@dataclass
class ListFilters:
    workflow_ids: Sequence[str] | None = None
    status: Sequence[str] | None = None
    start_time_ms: int | None = None
    end_time_ms: int | None = None
    name: str | None = None
    app_version: str | None = None
    user: str | None = None
    queue_name: str | None = None
    queues_only: bool = False
    workflow_id_prefix: str | None = None
    executor_id: str | None = None
    limit: int | None = None
    offset: int | None = None
    sort_desc: bool = False
    load_input: bool = True
    load_output: bool = True


class WorkflowStore:
    def __init__(self, db: Database, serializer: Serializer) -> None:
        self.db = db
        self.serializer = serializer

    # -- creation -----------------------------------------------------------

    def insert(self, wf: NewWorkflow, link: ChildLink | None = None) -> tuple[bool, AnyRow | None]:
        """Create the workflow unless its ID exists.

        Returns ``(True, None)`` when this call created it, else ``(False, row)`` with
        the existing row: a workflow ID is an idempotency key. A top-level start is one
        statement; a child also records its start as a step of the parent, atomically.
        """
        values = wf.values()
        stmt = _insert_ignore_statement(self.db)
        try:
            if link is None:
                with self.db.connect() as conn:
                    created = conn.execute(stmt, values).first() is not None
            else:
                with self.db.transaction() as conn:
                    created = conn.execute(stmt, values).first() is not None
                    _record_child_step(conn, self.db, link, wf.workflow_id)
        except sa.exc.IntegrityError as exc:
            if is_unique_violation(exc) and wf.deduplication_id is not None:
                raise DBOSQueueDeduplicatedError(
                    wf.workflow_id, wf.queue_name or "", wf.deduplication_id
                ) from None
            raise
        if created:
            return True, None
        return False, self.get_row(wf.workflow_id)

    # -- finishing ------------------------------------------------------------

    def finish(self, workflow_id: str, status: str, output: str | None, error: str | None) -> bool:
        """Record a terminal outcome unless the workflow was cancelled meanwhile."""
        params = {
            "f_id": workflow_id,
            "f_status": status,
            "f_output": output,
            "f_error": error,
            "f_now": now_ms(),
        }
        with self.db.connect() as conn:
            return conn.execute(_FINISH, params).rowcount > 0

    def cancel(self, workflow_id: str, with_descendants: bool = False) -> list[str]:
        """Set CANCELLED on a workflow not yet finished (and its unfinished descendants).

        Returns the IDs that changed. Cancelling also takes the workflow off its queue
        and frees its deduplication ID.
        """
        ids = [workflow_id]
        changed: list[str] = []
        with self.db.transaction() as conn:
            seen = set(ids)
            while ids:
                stmt = (
                    ws.update()
                    .where(ws.c.workflow_uuid.in_(ids), ws.c.status.in_(("PENDING", "ENQUEUED")))
                    .values(status="CANCELLED", deduplication_id=None, updated_at=now_ms())
                    .returning(ws.c.workflow_uuid)
                )
                changed.extend(r[0] for r in conn.execute(stmt))
                if not with_descendants:
                    break
                children = conn.execute(
                    sa.select(ws.c.workflow_uuid).where(ws.c.parent_workflow_id.in_(ids))
                ).scalars()
                ids = [c for c in children if c not in seen]
                seen.update(ids)
        return changed

    def prepare_resume(self, workflow_id: str, executor_id: str, owner: str | None = None) -> bool:
        """Make a cancelled, failed-over or enqueued workflow PENDING here, off its queue."""
        stamp = now_ms()
        stmt = (
            ws.update()
            .where(
                ws.c.workflow_uuid == workflow_id,
                ws.c.status.in_(
                    ("CANCELLED", "ENQUEUED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED", "PENDING")
                ),
            )
            .values(
                status="PENDING",
                executor_id=executor_id,
                owner_instance=owner,
                recovery_attempts=0,
                queue_name=None,
                deduplication_id=None,
                started_at_epoch_ms=stamp,
                # A resumed workflow gets its full timeout again, counted from now.
                workflow_deadline_epoch_ms=sa.case(
                    (ws.c.workflow_timeout_ms.is_(None), None),
                    else_=ws.c.workflow_timeout_ms + stamp,
                ),
                updated_at=stamp,
            )
        )
        with self.db.connect() as conn:
            return conn.execute(stmt).rowcount > 0

    def increment_recovery_attempts(
        self,
        workflow_id: str,
        executor_id: str,
        owner: str | None = None,
        expected_owner: Any = ANY_OWNER,
    ) -> int | None:
        """Take over a PENDING workflow and count one more start; returns the new count.

        With ``expected_owner``, only while that (dead) instance still owns it: of several
        processes recovering the same workflow, exactly one wins.
        """
        conditions = [ws.c.workflow_uuid == workflow_id, ws.c.status == "PENDING"]
        if expected_owner is not ANY_OWNER:
            conditions.append(
                ws.c.owner_instance.is_(None)
                if expected_owner is None
                else ws.c.owner_instance == expected_owner
            )
        stmt = (
            ws.update()
            .where(*conditions)
            .values(
                recovery_attempts=ws.c.recovery_attempts + 1,
                executor_id=executor_id,
                owner_instance=owner,
                updated_at=now_ms(),
            )
            .returning(ws.c.recovery_attempts)
        )
        with self.db.connect() as conn:
            value = conn.execute(stmt).scalar()
        return None if value is None else int(value)

    def mark_max_recovery_exceeded(self, workflow_id: str) -> None:
        stmt = (
            ws.update()
            .where(ws.c.workflow_uuid == workflow_id, ws.c.status == "PENDING")
            .values(
                status="MAX_RECOVERY_ATTEMPTS_EXCEEDED", deduplication_id=None, updated_at=now_ms()
            )
        )
        with self.db.connect() as conn:
            conn.execute(stmt)

    # -- reading --------------------------------------------------------------

    def get_row(self, workflow_id: str) -> AnyRow | None:
        with self.db.connect() as conn:
            return conn.execute(sa.select(ws).where(ws.c.workflow_uuid == workflow_id)).first()

    def get_outcome_row(self, workflow_id: str) -> AnyRow | None:
        """Just what a waiter for the result needs."""
        with self.db.connect() as conn:
            return conn.execute(_OUTCOME, {"o_id": workflow_id}).first()

    def cancelled_among(self, workflow_ids: Sequence[str]) -> set[str]:
        """Which of these workflows are CANCELLED (one query for a batch)."""
        stmt = sa.select(ws.c.workflow_uuid).where(
            ws.c.workflow_uuid.in_(list(workflow_ids)), ws.c.status == "CANCELLED"
        )
        with self.db.connect() as conn:
            return {r[0] for r in conn.execute(stmt)}

    def get_status(self, workflow_id: str) -> WorkflowStatus | None:
        row = self.get_row(workflow_id)
        return None if row is None else self.to_status(row)

    def pending_for_executor(
        self, executor_id: str, app_version: str | None, except_owner: str | None = None
    ) -> list[tuple[str, str | None]]:
        """``(workflow_id, owner_instance)`` of the executor's PENDING workflows."""
        stmt = sa.select(ws.c.workflow_uuid, ws.c.owner_instance).where(
            ws.c.status == "PENDING", ws.c.executor_id == executor_id
        )
        if app_version is not None:
            stmt = stmt.where(ws.c.application_version == app_version)
        if except_owner is not None:
            stmt = stmt.where(
                sa.or_(ws.c.owner_instance.is_(None), ws.c.owner_instance != except_owner)
            )
        with self.db.connect() as conn:
            return [(r[0], r[1]) for r in conn.execute(stmt.order_by(ws.c.created_at))]

    def list(self, f: ListFilters) -> list[WorkflowStatus]:
        return [self.to_status(r, f.load_input, f.load_output) for r in self.list_rows(f)]

    def list_rows(self, f: ListFilters) -> Sequence[AnyRow]:
        """The stored rows matching ``f``, nothing deserialized (operator views read these)."""
        stmt = sa.select(ws)
        if f.workflow_ids is not None:
            stmt = stmt.where(ws.c.workflow_uuid.in_(list(f.workflow_ids)))
        if f.workflow_id_prefix:
            stmt = stmt.where(ws.c.workflow_uuid.startswith(f.workflow_id_prefix, autoescape=True))
        if f.status:
            unknown = [s for s in f.status if s not in ALL_STATUSES]
            if unknown:
                raise _bad_filter(
                    f"Unknown workflow status {unknown[0]!r}; expected one of "
                    + ", ".join(sorted(ALL_STATUSES))
                )
            stmt = stmt.where(ws.c.status.in_(list(f.status)))
        if f.start_time_ms is not None:
            stmt = stmt.where(ws.c.created_at >= f.start_time_ms)
        if f.end_time_ms is not None:
            stmt = stmt.where(ws.c.created_at <= f.end_time_ms)
        if f.name is not None:
            stmt = stmt.where(ws.c.name == f.name)
        if f.app_version is not None:
            stmt = stmt.where(ws.c.application_version == f.app_version)
        if f.user is not None:
            stmt = stmt.where(ws.c.authenticated_user == f.user)
        if f.executor_id is not None:
            stmt = stmt.where(ws.c.executor_id == f.executor_id)
        if f.queues_only:
            stmt = stmt.where(ws.c.queue_name.is_not(None))
        if f.queue_name is not None:
            stmt = stmt.where(ws.c.queue_name == f.queue_name)
        order = ws.c.created_at.desc() if f.sort_desc else ws.c.created_at.asc()
        tiebreak = ws.c.workflow_uuid.desc() if f.sort_desc else ws.c.workflow_uuid.asc()
        stmt = stmt.order_by(order, tiebreak)
        if f.limit is not None:
            stmt = stmt.limit(f.limit)
        if f.offset is not None:
            if f.limit is None and self.db.is_sqlite:
                stmt = stmt.limit(-1)
            stmt = stmt.offset(f.offset)
        with self.db.connect() as conn:
            return conn.execute(stmt).all()

    def to_status(
        self, row: AnyRow, load_input: bool = True, load_output: bool = True
    ) -> WorkflowStatus:
        m = row._mapping
        roles = m["authenticated_roles"]
        return WorkflowStatus(
            workflow_id=m["workflow_uuid"],
            status=m["status"],
            name=m["name"],
            recovery_attempts=int(m["recovery_attempts"] or 0),
            class_name=m["class_name"],
            config_name=m["config_name"],
            authenticated_user=m["authenticated_user"],
            assumed_role=m["assumed_role"],
            authenticated_roles=None if roles is None else json.loads(roles),
            input=deserialize_value(self.serializer, m["inputs"], "workflow inputs")
            if load_input
            else None,
            output=deserialize_value(self.serializer, m["output"], "workflow output")
            if load_output
            else None,
            error=deserialize_error(self.serializer, m["error"]) if load_output else None,
            created_at=m["created_at"],
            updated_at=m["updated_at"],
            queue_name=m["queue_name"],
            executor_id=m["executor_id"],
            app_version=m["application_version"],
            app_id=m["application_id"],
            workflow_timeout_ms=m["workflow_timeout_ms"],
            workflow_deadline_epoch_ms=m["workflow_deadline_epoch_ms"],
            deduplication_id=m["deduplication_id"],
            priority=m["priority"],
            queue_partition_key=m["queue_partition_key"],
            parent_workflow_id=m["parent_workflow_id"],
            forked_from=m["forked_from"],
            dequeued_at=m["started_at_epoch_ms"],
        )


def _bad_filter(message: str) -> DBOSException:
    err = DBOSException(message)
    err.http_status = 400
    return err


def insert_ignoring_conflict(db: Database, table: sa.Table, values: dict[str, Any]) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` on the table's primary key."""
    module: Any
    if db.is_sqlite:
        from sqlalchemy.dialects import sqlite as module
    else:
        from sqlalchemy.dialects import postgresql as module
    keys = [c.name for c in table.primary_key.columns]
    return module.insert(table).values(values).on_conflict_do_nothing(index_elements=keys)


# Hot statements are built once with bound parameters: building them per call
# (every value a new bound literal to cache-key) cost more CPU than running them.
_FINISH = (
    ws.update()
    .where(ws.c.workflow_uuid == sa.bindparam("f_id"), ws.c.status == "PENDING")
    .values(
        status=sa.bindparam("f_status"),
        output=sa.bindparam("f_output"),
        error=sa.bindparam("f_error"),
        updated_at=sa.bindparam("f_now"),
        # Completion frees the deduplication ID for the next enqueue.
        deduplication_id=None,
    )
)
_OUTCOME = sa.select(ws.c.status, ws.c.output, ws.c.error, ws.c.name).where(
    ws.c.workflow_uuid == sa.bindparam("o_id")
)

_INSERT_IGNORE: dict[bool, Any] = {}


def _insert_ignore_statement(db: Database) -> Any:
    """The workflow INSERT, built once per dialect with values passed as parameters.

    Building it with ``.values(...)`` on every start made SQLAlchemy re-create and
    cache-key every bound literal (about a third of an enqueue's CPU time).
    """
    stmt = _INSERT_IGNORE.get(db.is_sqlite)
    if stmt is None:
        module: Any
        if db.is_sqlite:
            from sqlalchemy.dialects import sqlite as module
        else:
            from sqlalchemy.dialects import postgresql as module
        stmt = (
            module.insert(ws)
            .on_conflict_do_nothing(index_elements=[ws.c.workflow_uuid])
            .returning(ws.c.workflow_uuid)
        )
        _INSERT_IGNORE[db.is_sqlite] = stmt
    return stmt


def _record_child_step(conn: Connection, db: Database, link: ChildLink, child_id: str) -> None:
    stamp = now_ms()
    conn.execute(
        insert_ignoring_conflict(
            db,
            operation_outputs,
            dict(
                workflow_uuid=link.parent_workflow_id,
                function_id=link.function_id,
                function_name=link.function_name,
                child_workflow_id=child_id,
                started_at_epoch_ms=stamp,
                completed_at_epoch_ms=stamp,
            ),
        )
    )


def is_terminal(status: str) -> bool:
    return status in TERMINAL_STATUSES
