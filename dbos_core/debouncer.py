"""``Debouncer``: start a workflow only once its calls have paused for a while.

``debounce(key, period, *args)`` returns the handle of the workflow that will run
for this key; calling it again before that workflow starts replaces the inputs
(the last call wins) and delays the start by ``period`` again, never past
``debounce_timeout_sec`` after the first call. The waiting state is durable (see
``storage.debounce``); the dispatcher's timer releases due workflows onto their
queue (the debouncer's queue, or an internal queue without limits).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine
from typing import Any, Generic, ParamSpec, TypeVar

from .dbos import registration_of
from .error import DBOSException
from .handles import WorkflowHandle, WorkflowHandleAsync
from .identifiers import check_id
from .queue import Queue
from .runtime.dispatcher import dispatcher_of, dispatcher_timers
from .runtime.effects import Protocol, run_async, run_sync
from .runtime.registry import Registration
from .runtime.runtime import Runtime
from .runtime.steps import current_runtime
from .runtime.workflows import QueueRequest, start_protocol
from .types import INTERNAL_QUEUE_NAME

P = ParamSpec("P")
R = TypeVar("R")

# Where a debounced workflow runs when the debouncer names no queue.


def _seconds(value: Any, what: str, allow_none: bool) -> float | None:
    if value is None and allow_none:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise DBOSException(f"{what} must be a number of seconds >= 0, got {value!r}")
    return float(value)


class Debouncer(Generic[P, R]):
    def __init__(
        self,
        workflow: Callable[..., Any],
        *,
        debounce_timeout_sec: float | None = None,
        queue: Queue | None = None,
    ) -> None:
        reg, bound = registration_of(workflow)
        if reg.kind != "workflow":
            raise DBOSException(f"Debouncer needs a workflow; {reg.name!r} is a {reg.kind}")
        if queue is not None and not isinstance(queue, Queue):
            raise DBOSException(f"Debouncer queue must be a Queue, got {queue!r}")
        self._reg: Registration = reg
        self._bound = bound
        self.debounce_timeout_sec = _seconds(debounce_timeout_sec, "debounce_timeout_sec", True)
        self.queue = queue

    @staticmethod
    def create(
        workflow: Callable[P, R],
        *,
        debounce_timeout_sec: float | None = None,
        queue: Queue | None = None,
    ) -> Debouncer[P, R]:
        return Debouncer(workflow, debounce_timeout_sec=debounce_timeout_sec, queue=queue)

    @staticmethod
    def create_async(
        workflow: Callable[P, Coroutine[Any, Any, R]],
        *,
        debounce_timeout_sec: float | None = None,
        queue: Queue | None = None,
    ) -> Debouncer[P, R]:
        return Debouncer(workflow, debounce_timeout_sec=debounce_timeout_sec, queue=queue)

    def debounce(
        self, debounce_key: str, debounce_period_sec: float, *args: P.args, **kwargs: P.kwargs
    ) -> WorkflowHandle[R]:
        """Submit the workflow, delayed by ``debounce_period_sec``; returns its handle."""
        workflow_id = run_sync(self._protocol(debounce_key, debounce_period_sec, args, kwargs))
        return WorkflowHandle(workflow_id)

    async def debounce_async(
        self, debounce_key: str, debounce_period_sec: float, *args: P.args, **kwargs: P.kwargs
    ) -> WorkflowHandleAsync[R]:
        workflow_id = await run_async(
            self._protocol(debounce_key, debounce_period_sec, args, kwargs)
        )
        return WorkflowHandleAsync(workflow_id)

    def _protocol(
        self, key: str, period_sec: float, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Protocol[str]:
        from .runtime import context as ctx
        from .storage.debounce import HOLD_QUEUE, DebounceRequest

        check_id(key, "debounce_key")
        period = _seconds(period_sec, "debounce_period_sec", False)
        assert period is not None
        rt = current_runtime()
        timeout = self.debounce_timeout_sec
        request = DebounceRequest(
            key=f"{self._reg.name}\x1f{key}",
            period_ms=int(period * 1000),
            timeout_ms=None if timeout is None else int(timeout * 1000),
            target_queue=self.queue.name if self.queue is not None else INTERNAL_QUEUE_NAME,
        )
        chosen: list[str] = []

        def merge_or_insert(new: Any, link: Any) -> tuple[bool, Any]:
            if link is None and ctx.current_workflow.get() is not None:
                # A replaying parent: its earlier execution already debounced this call.
                chosen.append(new.workflow_id)
                return True, None
            chosen.append(rt.sysdb.debounce.debounce(request, new, link))
            return True, None

        yield from start_protocol(
            self._reg,
            (*self._bound, *args),
            kwargs,
            "enqueue",
            QueueRequest(queue_name=HOLD_QUEUE),
            insert=merge_or_insert,
        )
        dispatcher = dispatcher_of(rt)
        if dispatcher is not None:
            dispatcher.wake_timers()
        return chosen[-1]


def _fire_due_debounces(rt: Runtime) -> float | None:
    from .runtime.notifier import queue_key

    fired, next_at_ms = rt.sysdb.debounce.fire_due()
    for queue_name in fired:
        rt.notifier.notify(queue_key(queue_name))
    return None if next_at_ms is None else next_at_ms / 1000


dispatcher_timers.append(_fire_due_debounces)
