"""Waiting inside durable operations: woken by the notifier, bounded by time and cancellation.

Every wait (``recv``, ``get_event``, ``DBOS.sleep``, reading a stream) goes
through ``wait_until``: it subscribes to the keys that announce the awaited change
*before* it probes the database, so no change is lost between probe and wait,
and it polls only as a fallback for changes made by other processes on SQLite.
Inside a workflow it also listens to the workflow's cancel key and stops at its
deadline.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import Any

from ..error import DBOSException, DBOSWorkflowCancelledError
from . import context as ctx
from .effects import Blocking, Protocol, Wait
from .notifier import cancel_key
from .runtime import DBOSDestroyedError, Runtime

# How often a waiting workflow on SQLite checks whether another process cancelled it.
_CANCEL_CHECK = 1.0

# Called with True when a notification (not a poll timeout) prompted this look.
Probe = Callable[[bool], Protocol[tuple[bool, Any]]]
DeadlineSource = Callable[[], Protocol[float | None]]


def check_timeout(value: Any, what: str) -> float:
    """A wait length in seconds: a finite number >= 0 (0 means "look once, do not wait")."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise DBOSException(f"{what} must be a finite number of seconds >= 0, got {value!r}")
    return float(value)


def check_interrupted(rt: Runtime, state: ctx.WorkflowState | None) -> None:
    """Raise if the process is shutting down or the workflow was cancelled or timed out."""
    if rt.stopped:
        # Not a cancellation: the workflow stays PENDING and a later launch recovers it.
        raise DBOSDestroyedError("DBOS was destroyed while the workflow was waiting")
    if state is not None:
        state.check_cancelled()


def fixed_deadline(timeout: float | None) -> DeadlineSource:
    def source() -> Protocol[float | None]:
        return None if timeout is None else time.time() + timeout
        yield  # a generator, like every deadline source

    return source


def wait_until(
    rt: Runtime,
    keys: Iterable[str],
    probe: Probe | None,
    deadline: DeadlineSource,
) -> Protocol[tuple[bool, Any]]:
    """Probe until it finds something or the deadline (epoch seconds) passes.

    Returns ``(True, value)`` from the probe, or ``(False, None)`` at the deadline.
    ``deadline`` is asked once, after the first probe found nothing, so a durable
    wait records its give-up time only when it really has to wait. With no probe
    this is a plain interruptible sleep until the deadline.
    """
    state = ctx.current_workflow.get()
    all_keys = list(keys)
    if state is not None:
        all_keys.append(cancel_key(state.workflow_id))
    waiter = rt.notifier.subscribe(all_keys)
    parked = 1 if state is not None else 0
    rt.telemetry.waiting(parked)
    try:
        until: float | None = None
        first = True
        woken = False
        next_cancel_check = time.monotonic()
        while True:
            if probe is not None:
                found, value = yield from probe(woken)
                if found:
                    return True, value
            if first:
                until = yield from deadline()
                first = False
            now = time.time()
            if until is not None and now >= until:
                return False, None
            check_interrupted(rt, state)
            wait: float | None = None if until is None else until - now
            if probe is not None:
                wait = rt.poll_interval if wait is None else min(wait, rt.poll_interval)
            elif state is not None and rt.sysdb.is_sqlite:
                # A long sleep still looks for a cancel from another process now and then.
                cadence = max(rt.poll_interval, _CANCEL_CHECK)
                wait = cadence if wait is None else min(wait, cadence)
            if state is not None and state.deadline_ms is not None:
                to_deadline = max(0.0, state.deadline_ms / 1000 - now) + 0.001
                wait = to_deadline if wait is None else min(wait, to_deadline)
            woken = yield Wait(waiter, wait)
            if (
                not woken
                and state is not None
                and rt.sysdb.is_sqlite
                and time.monotonic() >= next_cancel_check
            ):
                # Polling fallback: a cancel from another process (SQLite has no NOTIFY;
                # on PostgreSQL the cancellation watch flags the workflow at once).
                next_cancel_check = time.monotonic()
                yield from _notice_remote_cancel(rt, state)
    finally:
        rt.telemetry.waiting(-parked)
        rt.notifier.unsubscribe(waiter)


def _notice_remote_cancel(rt: Runtime, state: ctx.WorkflowState) -> Protocol[None]:
    row = yield Blocking(lambda: rt.sysdb.workflows.get_outcome_row(state.workflow_id))
    if row is not None and row[0] == "CANCELLED":
        state.cancelled.set()
        raise DBOSWorkflowCancelledError(state.workflow_id)
