"""``Queue``: durable background execution with flow control.

Enqueueing is one INSERT of an ENQUEUED workflow row; the dispatcher of some
process (see ``runtime.dispatcher``) later claims it within the queue's limits.
A single step is enqueued by wrapping it in a small internal workflow.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypedDict, TypeVar

from .dbos import DBOS, registration_of
from .error import DBOSQueueError
from .handles import WorkflowHandle, WorkflowHandleAsync
from .options import is_positive_seconds
from .queue_limits import QueueLimits
from .runtime import context as ctx
from .runtime.dispatcher import queue_registry
from .runtime.effects import Protocol, run_async, run_sync
from .runtime.registry import Registration, registry
from .runtime.steps import step_protocol
from .runtime.workflows import QueueRequest, Started, start_protocol
from .types import INTERNAL_QUEUE_NAME

P = ParamSpec("P")
R = TypeVar("R")


class QueueRateLimit(TypedDict):
    """At most ``limit`` starts per ``period`` seconds, across all processes."""

    limit: int
    period: float


def _optional_positive_int(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DBOSQueueError(f"{what} must be a positive integer or None, got {value!r}")
    return value


class Queue:
    """A named queue; declare it at import time in every process that should run its work."""

    def __init__(
        self,
        name: str,
        concurrency: int | None = None,
        limiter: QueueRateLimit | None = None,
        *,
        worker_concurrency: int | None = None,
        priority_enabled: bool = False,
        partition_queue: bool = False,
        polling_interval_sec: float = 1.0,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise DBOSQueueError(f"A queue needs a non-empty string name, got {name!r}")
        where = f"Queue {name!r}"
        self.name = name
        self.concurrency = _optional_positive_int(concurrency, f"{where}: concurrency")
        self.worker_concurrency = _optional_positive_int(
            worker_concurrency, f"{where}: worker_concurrency"
        )
        if (
            self.concurrency is not None
            and self.worker_concurrency is not None
            and self.worker_concurrency > self.concurrency
        ):
            raise DBOSQueueError(
                f"{where}: worker_concurrency ({self.worker_concurrency}) cannot exceed "
                f"concurrency ({self.concurrency})"
            )
        self.limiter = limiter
        rate_limit: int | None = None
        rate_period_ms: int | None = None
        if limiter is not None:
            if not isinstance(limiter, dict) or set(limiter) != {"limit", "period"}:
                raise DBOSQueueError(
                    f"{where}: limiter must be a dict {{'limit': n, 'period': seconds}}, "
                    f"got {limiter!r}"
                )
            rate_limit = _optional_positive_int(limiter["limit"], f"{where}: limiter['limit']")
            period = limiter["period"]
            if not is_positive_seconds(period):
                raise DBOSQueueError(
                    f"{where}: limiter['period'] must be a positive number of seconds, "
                    f"got {period!r}"
                )
            rate_period_ms = max(1, int(period * 1000))
        self.priority_enabled = bool(priority_enabled)
        self.partition_queue = bool(partition_queue)
        if (
            isinstance(polling_interval_sec, bool)
            or not isinstance(polling_interval_sec, (int, float))
            or not math.isfinite(polling_interval_sec)
            or polling_interval_sec <= 0
        ):
            raise DBOSQueueError(
                f"{where}: polling_interval_sec must be a positive number of seconds, "
                f"got {polling_interval_sec!r}"
            )
        # Notifications start work at once; this only bounds the fallback re-check.
        self.polling_interval_sec = float(polling_interval_sec)
        self.limits = QueueLimits(
            name=name,
            concurrency=self.concurrency,
            worker_concurrency=self.worker_concurrency,
            rate_limit=rate_limit,
            rate_period_ms=rate_period_ms,
            partitioned=self.partition_queue,
            priority_enabled=self.priority_enabled,
            polling_interval_sec=self.polling_interval_sec,
        )
        # Declaring the same name again (a re-import, another test) replaces the settings.
        queue_registry.register(self.limits)

    def __repr__(self) -> str:
        return f"Queue({self.name!r})"

    # -- enqueueing ---------------------------------------------------------------

    def enqueue(self, func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> WorkflowHandle[R]:
        """Submit a workflow (or a single step) to this queue; returns its handle at once."""
        started = run_sync(self._enqueue_protocol(func, args, kwargs))
        return WorkflowHandle(started.workflow_id)

    async def enqueue_async(
        self,
        func: Callable[P, Coroutine[Any, Any, R]] | Callable[P, R],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> WorkflowHandleAsync[R]:
        """Async ``enqueue``: the workflow later runs on the runtime's own event loop."""
        started = await run_async(self._enqueue_protocol(func, args, kwargs))
        return WorkflowHandleAsync(started.workflow_id)

    def _enqueue_protocol(
        self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Protocol[Started]:
        reg, bound = registration_of(func)
        call_args: tuple[Any, ...] = (*bound, *args)
        call_kwargs = kwargs
        if reg.kind != "workflow":
            step_runner = _enqueued_step_async if reg.is_async else _enqueued_step
            call_args = (reg.name, call_args, call_kwargs)
            call_kwargs = {}
            reg, _ = registration_of(step_runner)
        request = self._queue_request()
        return (yield from start_protocol(reg, call_args, call_kwargs, "enqueue", request))

    def _queue_request(self) -> QueueRequest:
        options = ctx.enqueue_options.get() or ctx.EnqueueOptionsContext()
        if options.priority is not None and not self.priority_enabled:
            raise DBOSQueueError(
                f"Queue {self.name!r} does not have priority enabled; declare it with "
                "Queue(..., priority_enabled=True) to enqueue with a priority"
            )
        if self.partition_queue and options.queue_partition_key is None:
            raise DBOSQueueError(
                f"Queue {self.name!r} is partitioned: enqueue inside "
                "SetEnqueueOptions(queue_partition_key=...)"
            )
        if not self.partition_queue and options.queue_partition_key is not None:
            raise DBOSQueueError(
                f"Queue {self.name!r} is not partitioned; declare it with "
                "Queue(..., partition_queue=True) to use a queue_partition_key"
            )
        return QueueRequest(
            queue_name=self.name,
            deduplication_id=options.deduplication_id,
            priority=options.priority or 0,
            partition_key=options.queue_partition_key,
            app_version=options.app_version,
        )


# -- single steps on a queue ---------------------------------------------------------


def _step_registration(step_name: str) -> Registration:
    reg = registry.get(step_name)
    if reg is None or reg.kind == "workflow":
        raise DBOSQueueError(f"Enqueued step {step_name!r} is not a registered step here")
    return reg


def _step_call(reg: Registration, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Protocol[Any]:
    if reg.kind == "step":
        return step_protocol(reg.name, reg.step_options, reg.func, args, kwargs)
    # Other step kinds (transactions) are called through their decorated function.
    decorated = _decorated_function(reg)

    def call() -> Protocol[Any]:
        from .runtime.effects import UserCall

        return (yield UserCall(decorated, args, kwargs))

    return call()


def _decorated_function(reg: Registration) -> Callable[..., Any]:
    target: Any = sys.modules.get(reg.func.__module__)
    for part in reg.func.__qualname__.split("."):
        target = getattr(target, part, None)
    if getattr(target, "__dbos_registration__", None) is not reg:
        raise DBOSQueueError(
            f"Cannot enqueue {reg.kind} {reg.name!r}: only module-level functions of that kind "
            "can be enqueued; enqueue a workflow that calls it instead"
        )
    return target  # type: ignore[no-any-return]


@DBOS.workflow(name="dbos.internal.enqueued_step")
def _enqueued_step(step_name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return run_sync(_step_call(_step_registration(step_name), args, kwargs))


@DBOS.workflow(name="dbos.internal.enqueued_step_async")
async def _enqueued_step_async(
    step_name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    return await run_async(_step_call(_step_registration(step_name), args, kwargs))


# Forks, resumes from a client or the CLI, and debounced starts wait here for any
# application process's dispatcher.
internal_queue = Queue(INTERNAL_QUEUE_NAME)
