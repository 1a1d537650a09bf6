"""Messages, events and durable sleep, each written once as an effect protocol.

Inside a workflow every one of these operations is a step: its outcome is
checkpointed and replayed after recovery. Where the operation itself writes
(sending, consuming a message, setting an event), the write and the checkpoint
commit together (one statement on PostgreSQL, one transaction on SQLite; see
``storage/step_writes.py``), so a crash can neither lose nor repeat it.

Waits that can time out inside a workflow (``recv``, ``get_event``) take two
step slots: the operation's own, and one that records when the wait gives up,
written only when the wait really has to wait. A workflow restarted in the middle
of such a wait therefore gives up at the original time, as ``DBOS.sleep`` wakes
at its stored time.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..error import (
    DBOSException,
    DBOSInvalidStepCallError,
    DBOSNonExistentWorkflowError,
    DBOSUnexpectedStepError,
)
from ..serialization import deserialize_value, serialize_value
from . import context as ctx
from .effects import Blocking, Protocol
from .notifier import event_key, message_key
from .runtime import Runtime
from .steps import begin_step, current_runtime, record_outcome, replay
from .waiting import DeadlineSource, check_timeout, fixed_deadline, wait_until

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

SEND = "DBOS.send"
RECV = "DBOS.recv"
SLEEP = "DBOS.sleep"
SET_EVENT = "DBOS.setEvent"
GET_EVENT = "DBOS.getEvent"
GET_ALL_EVENTS = "DBOS.getAllEvents"

# Messages sent without a topic; an explicit "" topic means the same.
NO_TOPIC = ""


class _NothingToTake(Exception):
    """Raised inside a consume transaction to roll it back when the queue is empty."""


def topic_of(topic: Any) -> str:
    if topic is None:
        return NO_TOPIC
    if not isinstance(topic, str):
        raise DBOSException(f"A message topic must be a string or None, got {topic!r}")
    return topic


def _require_str(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise DBOSException(f"{what} must be a non-empty string, got {value!r}")
    return value


def workflow_step_state() -> ctx.WorkflowState | None:
    """The current workflow when the caller is its body (not a step or transaction)."""
    state = ctx.current_workflow.get()
    if state is None or ctx.current_step.get() is not None or ctx.in_transaction.get():
        return None
    return state


def write_step(
    rt: Runtime,
    state: ctx.WorkflowState,
    name: str,
    work: Callable[[Connection, int], None],
    chained: Callable[[Any, int], Any],
) -> Protocol[None]:
    """A workflow step whose only effect is a write: made with its checkpoint, once.

    On PostgreSQL ``chained(checkpoint_cte, function_id)`` builds the write as part
    of the checkpoint's statement (one round trip); on SQLite ``work`` runs in the
    checkpoint's transaction.
    """
    from ..storage.steps import StepNotRecorded

    function_id, record = begin_step(rt, state, name)
    if record is not None:
        replay(rt, record)
        return
    started = int(time.time() * 1000)
    done = serialize_value(rt.serializer, None, f"output of {name}")
    steps = rt.sysdb.steps

    def run(conn: Connection) -> str | None:
        work(conn, function_id)
        return done

    def write() -> Any:
        from ..storage import step_writes

        if rt.sysdb.is_sqlite:
            return step_writes.record_with(
                steps, state.workflow_id, function_id, name, run, started_at_ms=started
            )
        return step_writes.record_chained(
            steps,
            state.workflow_id,
            function_id,
            name,
            done,
            lambda checkpoint: chained(checkpoint, function_id),
            started_at_ms=started,
        )

    try:
        yield Blocking(write)
    except StepNotRecorded:
        state.cancelled.set()
        state.check_cancelled()
        raise


# -- messages ---------------------------------------------------------------------


def send_protocol(destination_id: Any, message: Any, topic: Any) -> Protocol[None]:
    import sqlalchemy as sa

    from ..storage.database import is_foreign_key_violation

    destination = _require_str(destination_id, "send: destination_id")
    name = topic_of(topic)
    rt = current_runtime()
    # Serialize before anything is written: an unserializable message changes nothing.
    text = serialize_value(rt.serializer, message, f"message to workflow {destination!r}")
    rt.telemetry.event("dbos.send", {"dbos.destination_id": destination, "dbos.topic": name})
    state = workflow_step_state()
    if state is not None:
        sender = state.workflow_id

        def work(conn: Connection, function_id: int) -> None:
            # The key derives from the sender's step: a replayed send lands once.
            rt.sysdb.messages.send_in(conn, destination, name, text, f"{sender}::{function_id}")

        def chained(checkpoint: Any, function_id: int) -> Any:
            return rt.sysdb.messages.send_after(
                checkpoint, destination, name, text, f"{sender}::{function_id}"
            )

        try:
            yield from write_step(rt, state, SEND, work, chained)
        except sa.exc.IntegrityError as exc:
            if is_foreign_key_violation(exc):
                raise DBOSNonExistentWorkflowError(
                    destination, "cannot send a message to it"
                ) from None
            raise
    else:
        key = _take_send_key() if ctx.current_workflow.get() is None else None
        message_uuid = f"idempotency::{key}" if key is not None else str(uuid.uuid4())
        yield Blocking(lambda: rt.sysdb.messages.send(destination, name, text, message_uuid))
    rt.notifier.notify(message_key(destination, name))


def _take_send_key() -> str | None:
    """The ``SetWorkflowID`` of the caller, used once as the send's idempotency key.

    Only an explicit ``SetWorkflowID``: a web request's idempotency key is left for
    the workflow the request starts (two sends of one request are two messages).
    """
    assignment = ctx.assigned_id.get()
    if assignment is None or assignment.used:
        return None
    assignment.used = True
    return assignment.workflow_id


def recv_protocol(topic: Any, timeout_seconds: Any) -> Protocol[Any]:
    import sqlalchemy as sa

    from ..storage import step_writes
    from ..storage.database import is_unique_violation
    from ..storage.steps import StepNotRecorded

    name = topic_of(topic)
    timeout = check_timeout(timeout_seconds, "recv: timeout_seconds")
    state = ctx.current_workflow.get()
    if state is None:
        raise DBOSInvalidStepCallError(
            "DBOS.recv must be called from inside a workflow: messages are addressed to "
            "a workflow ID"
        )
    if ctx.current_step.get() is not None or ctx.in_transaction.get():
        raise DBOSInvalidStepCallError(
            "DBOS.recv cannot be called from inside a step or transaction; call it from "
            "the workflow function"
        )
    rt = current_runtime()
    rt.telemetry.event("dbos.recv", {"dbos.topic": name, "dbos.timeout_seconds": timeout})
    wid = state.workflow_id
    function_id, record = begin_step(rt, state, RECV)
    timeout_slot = state.next_function_id()
    if record is not None:
        return replay(rt, record)
    started = int(time.time() * 1000)

    def take(conn: Connection) -> str | None:
        text = rt.sysdb.messages.consume_in(conn, wid, name)
        if text is None:
            raise _NothingToTake
        return text

    def probe_sqlite(notified: bool) -> Protocol[tuple[bool, Any]]:
        # Unless a send just announced a message, a read first: the write
        # transaction (and SQLite's write lock) only when a message waits.
        if not notified:
            waiting = yield Blocking(lambda: rt.sysdb.messages.has_unread(wid, name))
            if not waiting:
                return False, None
        try:
            _ours, stored = yield Blocking(
                lambda: step_writes.record_with(
                    rt.sysdb.steps, wid, function_id, RECV, take, started_at_ms=started
                )
            )
        except _NothingToTake:
            return False, None
        except StepNotRecorded:
            state.cancelled.set()
            state.check_cancelled()
            raise
        return True, replay(rt, stored)

    def probe_postgres(_notified: bool) -> Protocol[tuple[bool, Any]]:
        # One round trip takes the message and checkpoints it.
        try:
            text = yield Blocking(
                lambda: rt.sysdb.messages.consume_into_step_pg(
                    wid, name, function_id, RECV, started
                )
            )
        except sa.exc.IntegrityError as exc:
            if not is_unique_violation(exc):
                raise
            # Another execution of this workflow recorded this recv first: its outcome wins.
            stored = yield Blocking(lambda: rt.sysdb.steps.get(wid, function_id))
            if stored is None:
                raise
            return True, replay(rt, stored)
        if text is None:
            return False, None
        return True, deserialize_value(rt.serializer, text, f"message to workflow {wid!r}")

    probe = probe_sqlite if rt.sysdb.is_sqlite else probe_postgres

    found, value = yield from wait_until(
        rt,
        [message_key(wid, name)],
        probe,
        durable_deadline(rt, state, timeout_slot, timeout),
    )
    if found:
        return value
    # Timed out: record that this recv received nothing (replay returns None too).
    return (yield from record_outcome(rt, state, function_id, RECV, started, None, None))


def durable_deadline(
    rt: Runtime, state: ctx.WorkflowState, function_id: int, timeout: float
) -> DeadlineSource:
    """The give-up time of a wait, stored as the step ``function_id`` the first time."""

    def source() -> Protocol[float | None]:
        record = state.recorded.get(function_id)
        if record is not None:
            if record.function_name != SLEEP:
                raise DBOSUnexpectedStepError(
                    state.workflow_id, function_id, SLEEP, record.function_name
                )
            return float(replay(rt, record))
        until = time.time() + timeout
        if timeout > 0:
            now_ms = int(time.time() * 1000)
            until = yield from record_outcome(rt, state, function_id, SLEEP, now_ms, until, None)
        return until

    return source


# -- durable sleep -------------------------------------------------------------------


def sleep_protocol(seconds: Any) -> Protocol[None]:
    duration = check_timeout(seconds, "DBOS.sleep: seconds")
    rt = current_runtime()
    rt.telemetry.event("dbos.sleep", {"dbos.sleep.seconds": duration})
    state = workflow_step_state()
    if state is None:
        yield from wait_until(rt, [], None, fixed_deadline(duration))
        return
    function_id, record = begin_step(rt, state, SLEEP)
    if record is not None:
        wake_at = float(replay(rt, record))
    else:
        # Store the wake-up time before sleeping: a restarted workflow keeps it.
        wake_at = time.time() + duration
        started = int(time.time() * 1000)
        wake_at = yield from record_outcome(rt, state, function_id, SLEEP, started, wake_at, None)

    def stored() -> Protocol[float | None]:
        return wake_at
        yield

    yield from wait_until(rt, [], None, stored)


# -- events -------------------------------------------------------------------------


def set_event_protocol(key: Any, value: Any) -> Protocol[None]:
    name = _require_str(key, "set_event: key")
    current = ctx.current_workflow.get()
    if current is None:
        raise DBOSInvalidStepCallError(
            "DBOS.set_event must be called from inside a workflow or one of its steps"
        )
    rt = current_runtime()
    text = serialize_value(rt.serializer, value, f"value of event {name!r}")
    rt.telemetry.event("dbos.set_event", {"dbos.event.key": name})
    wid = current.workflow_id
    state = workflow_step_state()
    if state is not None:

        def work(conn: Connection, _function_id: int) -> None:
            rt.sysdb.messages.set_event_in(conn, wid, name, text)

        def chained(checkpoint: Any, _function_id: int) -> Any:
            return rt.sysdb.messages.set_event_after(checkpoint, wid, name, text)

        yield from write_step(rt, state, SET_EVENT, work, chained)
    else:
        # From a step: part of the step, repeated if the step is retried (same value).
        yield Blocking(lambda: rt.sysdb.messages.set_event(wid, name, text))
    rt.notifier.notify(event_key(wid, name))


def get_event_protocol(workflow_id: Any, key: Any, timeout_seconds: Any) -> Protocol[Any]:
    target = _require_str(workflow_id, "get_event: workflow_id")
    name = _require_str(key, "get_event: key")
    timeout = check_timeout(timeout_seconds, "get_event: timeout_seconds")
    rt = current_runtime()
    rt.telemetry.event(
        "dbos.get_event",
        {"dbos.event.workflow_id": target, "dbos.event.key": name, "dbos.timeout_seconds": timeout},
    )
    checked_exists = False

    def probe(_notified: bool) -> Protocol[tuple[bool, Any]]:
        nonlocal checked_exists
        text = yield Blocking(lambda: rt.sysdb.messages.get_event(target, name))
        if text is not None:
            return True, deserialize_value(rt.serializer, text, f"event {name!r} of {target!r}")
        if not checked_exists:
            row = yield Blocking(lambda: rt.sysdb.workflows.get_outcome_row(target))
            if row is None:
                raise DBOSNonExistentWorkflowError(target, f"cannot get its event {name!r}")
            checked_exists = True
        return False, None

    keys = [event_key(target, name)]
    state = workflow_step_state()
    if state is None:
        _found, value = yield from wait_until(rt, keys, probe, fixed_deadline(timeout))
        return value
    # In a workflow the value read is checkpointed: replay sees it even if it changed.
    function_id, record = begin_step(rt, state, GET_EVENT)
    timeout_slot = state.next_function_id()
    if record is not None:
        return replay(rt, record)
    started = int(time.time() * 1000)
    try:
        _found, value = yield from wait_until(
            rt, keys, probe, durable_deadline(rt, state, timeout_slot, timeout)
        )
    except DBOSNonExistentWorkflowError as exc:
        # Checkpointed too: a replay raises it again even if that workflow exists by then.
        return (yield from record_outcome(rt, state, function_id, GET_EVENT, started, None, exc))
    return (yield from record_outcome(rt, state, function_id, GET_EVENT, started, value, None))


def get_all_events_protocol(workflow_id: Any) -> Protocol[dict[str, Any]]:
    target = _require_str(workflow_id, "get_all_events: workflow_id")
    rt = current_runtime()

    def read() -> dict[str, Any]:
        texts = rt.sysdb.messages.get_all_events(target)
        if not texts and rt.sysdb.workflows.get_outcome_row(target) is None:
            raise DBOSNonExistentWorkflowError(target, "cannot get its events")
        return {
            k: deserialize_value(rt.serializer, v, f"event {k!r} of {target!r}")
            for k, v in texts.items()
        }

    state = workflow_step_state()
    if state is None:
        events: dict[str, Any] = yield Blocking(read)
        return events
    function_id, record = begin_step(rt, state, GET_ALL_EVENTS)
    if record is not None:
        return replay(rt, record)  # type: ignore[no-any-return]
    started = int(time.time() * 1000)
    error: Exception | None = None
    try:
        events = yield Blocking(read)
    except DBOSNonExistentWorkflowError as exc:
        events, error = {}, exc
    recorded: dict[str, Any] = yield from record_outcome(
        rt, state, function_id, GET_ALL_EVENTS, started, events if error is None else None, error
    )
    return recorded
