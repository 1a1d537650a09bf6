"""The telemetry of a DBOS with tracing and/or metrics on: one wrapper per workflow
execution and per step, each feeding whichever of the two is enabled.

A failure inside observability is logged (once loudly) and swallowed: it must never
change the outcome of the workflow it observes.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, TypeVar

from ..error import DBOSWorkflowCancelledError
from ..runtime import context as ctx
from . import Telemetry

if TYPE_CHECKING:
    from ..config import ResolvedConfig
    from ..runtime.context import WorkflowState
    from ..runtime.effects import Effect, Protocol
    from ..runtime.runtime import Runtime
    from .metrics import Metrics
    from .tracing import Scope, Tracing

T = TypeVar("T")


class ActiveTelemetry(Telemetry):
    def __init__(self, config: ResolvedConfig) -> None:
        # Imported here so that a missing extra fails at DBOS(...), naming the extra.
        self._tracing: Tracing | None = None
        self._metrics: Metrics | None = None
        if config.enable_otlp:
            from .tracing import Tracing

            self._tracing = Tracing(config)
            self.tracing = True
        if config.enable_metrics:
            from .metrics import Metrics

            self._metrics = Metrics()
        self._rt: Runtime | None = None
        self._reported = False

    def _failed(self, what: str, exc: Exception) -> None:
        level = logging.DEBUG if self._reported else logging.WARNING
        self._reported = True
        logging.getLogger("dbos").log(level, "Observability failed to %s: %r", what, exc)

    def start(self, rt: Runtime) -> None:
        self._rt = rt
        if self._metrics is not None:
            self._metrics.start(rt)
        if self._tracing is not None:
            self._tracing.start(rt)

    def stop(self) -> None:
        if self._tracing is not None:
            self._tracing.stop()
        if self._metrics is not None:
            self._metrics.stop()

    def abandon(self) -> None:
        if self._tracing is not None:
            self._tracing.abandon()
        if self._metrics is not None:
            self._metrics.stop()

    def start_context(
        self, name: str, workflow_id: str, mode: str, queue_name: str | None
    ) -> str | None:
        if self._tracing is None:
            return None
        try:
            return self._tracing.start_context(name, workflow_id, mode, queue_name)
        except Exception as exc:
            self._failed("record a workflow's trace", exc)
            return None

    def workflow(self, state: WorkflowState, call: Effect) -> Protocol[Any]:
        started = time.perf_counter()
        scope = None
        try:
            if self._tracing is not None:
                scope = self._tracing.begin_workflow(state)
            if self._metrics is not None:
                self._metrics.workflow_started(state.name)
        except Exception as exc:
            self._failed("observe a workflow's start", exc)
        try:
            result = yield call
        except BaseException as exc:
            self._end_workflow(state, scope, self._status_of(exc), exc, started)
            raise
        self._end_workflow(state, scope, "SUCCESS", None, started)
        return result

    def _status_of(self, exc: BaseException) -> str:
        from ..runtime.runtime import DBOSDestroyedError

        if isinstance(exc, DBOSDestroyedError) or not isinstance(exc, Exception):
            return "PENDING"  # the process is going away; recovery runs it again
        if self._rt is not None and self._rt.stopped:
            return "PENDING"
        if isinstance(exc, DBOSWorkflowCancelledError):
            return "CANCELLED"
        return "ERROR"

    def _end_workflow(
        self,
        state: WorkflowState,
        scope: Scope | None,
        status: str,
        error: BaseException | None,
        started: float,
    ) -> None:
        try:
            # Metrics first: whoever sees the span exported then finds them counted.
            if self._metrics is not None and status != "PENDING":
                self._metrics.workflow_finished(state.name, status, time.perf_counter() - started)
            if scope is not None and self._tracing is not None:
                self._tracing.end_workflow(scope, status, error)
        except Exception as exc:
            self._failed("observe a workflow's end", exc)

    def step(
        self,
        state: WorkflowState,
        function_id: int,
        name: str,
        body: Protocol[T],
        kind: str = "step",
    ) -> Protocol[T]:
        return self._observed_step(state, function_id, name, body, kind)

    def _observed_step(
        self, state: WorkflowState, function_id: int, name: str, body: Protocol[T], kind: str
    ) -> Protocol[T]:
        started = time.perf_counter()
        scope = None
        try:
            if self._tracing is not None:
                scope = self._tracing.begin_step(state, function_id, name, kind)
        except Exception as exc:
            self._failed("observe a step's start", exc)
        try:
            result = yield from body
        except BaseException as exc:
            self._end_step(name, scope, exc, started, ctx.current_step.get())
            raise
        self._end_step(name, scope, None, started, ctx.current_step.get())
        return result

    def _end_step(
        self,
        name: str,
        scope: Scope | None,
        error: BaseException | None,
        started: float,
        step: Any,
    ) -> None:
        attempt = step.attempt if step is not None and step.name == name else 1
        try:
            if self._metrics is not None:
                self._metrics.step_finished(name, error is not None, time.perf_counter() - started)
            if scope is not None and self._tracing is not None:
                self._tracing.end_step(scope, error, attempt)
        except Exception as exc:
            self._failed("observe a step's end", exc)

    def step_retry(self, name: str, attempt: int, error: BaseException) -> None:
        try:
            self._step_retry(name, attempt, error)
        except Exception as exc:
            self._failed("record a step retry", exc)

    def _step_retry(self, name: str, attempt: int, error: BaseException) -> None:
        if self._tracing is not None:
            self._tracing.event(
                "dbos.step.retry",
                {
                    "dbos.step.attempt": attempt,
                    "exception.type": type(error).__name__,
                    "exception.message": str(error),
                },
            )
        if self._metrics is not None:
            self._metrics.step_retry(name)

    def event(self, name: str, attributes: dict[str, Any]) -> None:
        if self._tracing is not None:
            try:
                self._tracing.event(name, attributes)
            except Exception as exc:
                self._failed(f"record the event {name}", exc)

    def recovered(self, workflow_name: str) -> None:
        if self._metrics is not None:
            self._metrics.recovered(workflow_name)

    def dequeued(self, queue_name: str, enqueued_at_ms: int) -> None:
        if self._metrics is not None:
            self._metrics.dequeued(queue_name, enqueued_at_ms)

    def waiting(self, delta: int) -> None:
        if self._metrics is not None:
            self._metrics.waiting(delta)

    def metrics_exposition(self) -> tuple[bytes, str] | None:
        return self._metrics.exposition() if self._metrics is not None else None
