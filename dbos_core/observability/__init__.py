"""Observability: OpenTelemetry traces and logs, Prometheus metrics.

The runtime talks to observability through one object, ``rt.telemetry``, a
``Telemetry``. With everything off it is the base class below: its methods do
nothing, and the step wrapper hands the step's protocol back unchanged, so the hot
path pays one method call. With ``enable_otlp`` or ``enable_metrics`` set,
``build_telemetry`` returns ``ActiveTelemetry`` (``active.py``), which imports
OpenTelemetry (``tracing.py``, ``logs.py``) and prometheus-client (``metrics.py``)
only then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from ..config import ResolvedConfig
    from ..runtime.context import WorkflowState
    from ..runtime.effects import Effect, Protocol
    from ..runtime.runtime import Runtime

T = TypeVar("T")


class Telemetry:
    """What the runtime reports as it works; this base reports nowhere."""

    #: True when spans are created (tests and adapters may ask).
    tracing = False

    def start(self, rt: Runtime) -> None:
        """Called first thing at launch (before the database is opened)."""

    def stop(self) -> None:
        """Called last thing at destroy: flush what is buffered, in bounded time."""

    def abandon(self) -> None:
        """In a forked child, for the parent's runtime: export nothing more from here."""

    def start_context(
        self, name: str, workflow_id: str, mode: str, queue_name: str | None
    ) -> str | None:
        """The trace (W3C traceparent) a workflow being created belongs to, to store with it."""
        return None

    def workflow(self, state: WorkflowState, call: Effect) -> Protocol[Any]:
        """Perform ``call`` (the workflow body) as one observed execution of ``state``."""
        return (yield call)

    def step(
        self,
        state: WorkflowState,
        function_id: int,
        name: str,
        body: Protocol[T],
        kind: str = "step",
    ) -> Protocol[T]:
        """Run a step's protocol (its attempts, or a transaction) as one observed step."""
        return body

    def step_retry(self, name: str, attempt: int, error: BaseException) -> None:
        """Attempt ``attempt`` of step ``name`` failed with ``error`` and will be retried."""

    def event(self, name: str, attributes: dict[str, Any]) -> None:
        """A DBOS operation (sleep, send, recv, set/get event) happened here."""

    def recovered(self, workflow_name: str) -> None:
        """A PENDING workflow of a dead process is being run again here."""

    def dequeued(self, queue_name: str, enqueued_at_ms: int) -> None:
        """A queued workflow, created at ``enqueued_at_ms``, is starting here."""

    def waiting(self, delta: int) -> None:
        """A workflow started (+1) or stopped (-1) waiting (sleep, recv, events, results)."""

    def metrics_exposition(self) -> tuple[bytes, str] | None:
        """The Prometheus text and its content type, or None when metrics are off."""
        return None


def build_telemetry(config: ResolvedConfig) -> Telemetry:
    """The telemetry the configuration asks for; raises if its extra is not installed."""
    if not config.enable_otlp and not config.enable_metrics:
        return Telemetry()
    from .active import ActiveTelemetry

    return ActiveTelemetry(config)


_otel_trace: Any = None  # opentelemetry.trace once imported, False when absent


def current_traceparent() -> str | None:
    """The W3C traceparent of the caller's current span, if OpenTelemetry is installed
    and a span is current (the client stores it with the workflows it enqueues)."""
    global _otel_trace
    if _otel_trace is None:
        try:
            from opentelemetry import trace as module

            _otel_trace = module
        except ImportError:
            _otel_trace = False
    if _otel_trace is False:
        return None
    context = _otel_trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"
