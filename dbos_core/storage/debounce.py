"""Rows of ``debouncers``: delaying a workflow until its inputs stop changing.

The workflow row exists from the first ``debounce`` call (so its handle works at
once), ENQUEUED on ``HOLD_QUEUE``, which no dispatcher serves. Each later call
replaces its inputs and pushes the fire time back (never past the give-up time).
When the fire time passes, one transaction moves the row to its real queue and
deletes the debouncer entry, so the workflow starts exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from .database import Database, is_unique_violation
from .schema import debouncers, workflow_status
from .workflows import ChildLink, NewWorkflow, _insert_ignore_statement, _record_child_step, now_ms

HOLD_QUEUE = "_dbos_debounce_hold"
db_ = debouncers
ws = workflow_status


@dataclass
class DebounceRequest:
    key: str
    period_ms: int
    timeout_ms: int | None
    target_queue: str


class DebounceStore:
    def __init__(self, db: Database, notify_channel: str) -> None:
        self.db = db
        self.notify_channel = notify_channel

    def debounce(self, request: DebounceRequest, new: NewWorkflow, link: ChildLink | None) -> str:
        """Merge into the waiting workflow of this key, or create one; returns its ID."""
        for attempt in range(3):
            try:
                return self._debounce_once(request, new, link)
            except sa.exc.IntegrityError as exc:
                # Another process created the entry for this key at the same moment.
                if not is_unique_violation(exc) or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _debounce_once(
        self, request: DebounceRequest, new: NewWorkflow, link: ChildLink | None
    ) -> str:
        with self.db.transaction() as conn:
            pick = sa.select(db_.c.workflow_uuid, db_.c.give_up_at_epoch_ms).where(
                db_.c.debounce_key == request.key
            )
            if not self.db.is_sqlite:
                pick = pick.with_for_update()
            existing = conn.execute(pick).first()
            now = now_ms()
            fire_at = now + request.period_ms
            if existing is not None:
                workflow_id, give_up = existing
                merged = conn.execute(
                    ws.update()
                    .where(
                        ws.c.workflow_uuid == workflow_id,
                        ws.c.status == "ENQUEUED",
                        ws.c.queue_name == HOLD_QUEUE,
                    )
                    .values(inputs=new.inputs, updated_at=now)
                ).rowcount
                if merged:
                    if give_up is not None:
                        fire_at = min(fire_at, int(give_up))
                    conn.execute(
                        db_.update()
                        .where(db_.c.debounce_key == request.key)
                        .values(fire_at_epoch_ms=fire_at)
                    )
                    if link is not None:
                        _record_child_step(conn, self.db, link, workflow_id)
                    return str(workflow_id)
                # Its workflow was cancelled meanwhile: start over with a new one.
                conn.execute(db_.delete().where(db_.c.debounce_key == request.key))
            new.status = "ENQUEUED"
            new.queue_name = HOLD_QUEUE
            conn.execute(_insert_ignore_statement(self.db), new.values())
            give_up_at = None if request.timeout_ms is None else now + request.timeout_ms
            conn.execute(
                db_.insert().values(
                    debounce_key=request.key,
                    workflow_uuid=new.workflow_id,
                    fire_at_epoch_ms=fire_at if give_up_at is None else min(fire_at, give_up_at),
                    give_up_at_epoch_ms=give_up_at,
                    target_queue=request.target_queue,
                )
            )
            if link is not None:
                _record_child_step(conn, self.db, link, new.workflow_id)
            return new.workflow_id

    def fire_due(self) -> tuple[set[str], int | None]:
        """Release every workflow whose fire time passed; returns their queues and the next time."""
        fired: set[str] = set()
        # Almost always nothing is due: find out with a plain read, not a write lock.
        with self.db.connect() as conn:
            soonest = conn.execute(sa.select(sa.func.min(db_.c.fire_at_epoch_ms))).scalar()
        if soonest is None or int(soonest) > now_ms():
            return fired, None if soonest is None else int(soonest)
        with self.db.transaction() as conn:
            now = now_ms()
            due = (
                sa.select(db_.c.debounce_key, db_.c.workflow_uuid, db_.c.target_queue)
                .where(db_.c.fire_at_epoch_ms <= now)
                .order_by(db_.c.fire_at_epoch_ms)
                .limit(100)
            )
            if not self.db.is_sqlite:
                due = due.with_for_update(skip_locked=True)
            for key, workflow_id, target in conn.execute(due).all():
                conn.execute(
                    ws.update()
                    .where(
                        ws.c.workflow_uuid == workflow_id,
                        ws.c.status == "ENQUEUED",
                        ws.c.queue_name == HOLD_QUEUE,
                    )
                    .values(queue_name=target, updated_at=now)
                )
                conn.execute(db_.delete().where(db_.c.debounce_key == key))
                fired.add(target)
            if fired and not self.db.is_sqlite:
                # Moving a row between queues changes no status, so no trigger speaks for it.
                for target in fired:
                    conn.execute(
                        sa.text("SELECT pg_notify(:channel, :payload)"),
                        {"channel": self.notify_channel, "payload": f"queue:{target}"},
                    )
            next_at = conn.execute(sa.select(sa.func.min(db_.c.fire_at_epoch_ms))).scalar()
        return fired, None if next_at is None else int(next_at)
