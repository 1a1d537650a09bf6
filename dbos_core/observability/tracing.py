"""OpenTelemetry spans and log export for DBOS operations (extra ``otel``).

One span per workflow execution, one per step or transaction as its child, span
events for the other operations. Each workflow stores the W3C traceparent of the
trace it belongs to (``workflow_status.trace_context``): the caller's span, or a
short root span made at its creation when the caller had none. Every execution
of the workflow, the first one or one recovered in another process, is a child
of that stored context, so all of them share one trace.

Export is OTLP/HTTP, batched by the SDK's batch processors in their own threads:
a step only appends its finished span to a bounded in-memory queue, and a
collector that is down costs dropped telemetry, never a failed or slowed step.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..error import DBOSConfigurationError

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
    from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode, TraceFlags
except ImportError as exc:  # the otel extra is optional
    raise DBOSConfigurationError(
        "enable_otlp is True but OpenTelemetry is not installed: install the 'otel' extra, "
        f"for example pip install 'dbos-suite[otel]' ({exc})"
    ) from exc

if TYPE_CHECKING:
    from ..config import ResolvedConfig
    from ..runtime.context import WorkflowState
    from ..runtime.runtime import Runtime

INSTRUMENTATION_NAME = "dbos_core"
# destroy() waits at most this long for buffered spans and logs to leave.
SHUTDOWN_TIMEOUT_SEC = 2.0

logger = logging.getLogger("dbos")


def traceparent_of(context: SpanContext) -> str:
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def parse_traceparent(value: str | None) -> SpanContext | None:
    """A stored traceparent as a remote span context; None if absent or malformed."""
    if not value:
        return None
    parts = value.split("-")
    if len(parts) != 4 or parts[0] != "00":
        return None
    try:
        trace_id, span_id, flags = int(parts[1], 16), int(parts[2], 16), int(parts[3], 16)
    except ValueError:
        return None
    context = SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags))
    return context if context.is_valid else None


class _Detachable(SpanProcessor):
    """A batch processor DBOS added to a provider it may not own (the application's, or
    a global one an earlier DBOS installed): at destroy it stops forwarding, since a
    provider's processors cannot be removed."""

    def __init__(self, delegate: SpanProcessor) -> None:
        self.delegate = delegate
        self.attached = True

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if self.attached:
            self.delegate.on_end(span)

    def shutdown(self) -> None:
        self.attached = False
        self.delegate.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(self.delegate.force_flush(timeout_millis))


class Scope:
    """An open span and the context to restore when it ends."""

    __slots__ = ("previous", "span")

    def __init__(self, span: trace.Span, previous: Context) -> None:
        self.span = span
        self.previous = previous


class Tracing:
    def __init__(self, config: ResolvedConfig) -> None:
        self.config = config
        self.attributes: dict[str, Any] = dict(config.otlp_attributes)
        self.processors: list[_Detachable] = []
        self.log_handler: logging.Handler | None = None
        self.logger_provider: Any = None
        self.tracer: trace.Tracer = trace.NoOpTracer()
        self.rt: Runtime | None = None

    # -- lifecycle ------------------------------------------------------------------

    def start(self, rt: Runtime) -> None:
        self.rt = rt
        provider = self._provider()
        for endpoint in self.config.otlp_traces_endpoints:
            processor = _Detachable(_span_processor(endpoint))
            if hasattr(provider, "add_span_processor"):
                provider.add_span_processor(processor)
                self.processors.append(processor)
            else:
                logger.warning(
                    "The application's TracerProvider (%s) cannot take span processors; "
                    "DBOS spans go where it exports them, not to %s",
                    type(provider).__name__,
                    endpoint,
                )
                processor.shutdown()
        from .. import __version__

        self.tracer = provider.get_tracer(INSTRUMENTATION_NAME, __version__)
        if self.config.otlp_logs_endpoints:
            self._start_logs()

    def _provider(self) -> trace.TracerProvider:
        """The application's global TracerProvider if it set one, else ours, made global.

        Made global so that the framework instrumentation (request spans) exports to the
        same endpoints and DBOS spans nest under request spans.
        """
        current = trace.get_tracer_provider()
        if not isinstance(current, trace.ProxyTracerProvider):
            return current
        from opentelemetry.sdk.resources import Resource

        resource = Resource.create({"service.name": self.config.name, **self.attributes})
        ours = TracerProvider(resource=resource)
        trace.set_tracer_provider(ours)
        installed = trace.get_tracer_provider()
        return ours if installed is ours else installed

    def _start_logs(self) -> None:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
        from opentelemetry.sdk.resources import Resource

        from .logs import OTLPLogHandler

        resource = Resource.create({"service.name": self.config.name, **self.attributes})
        provider = LoggerProvider(resource=resource)
        for endpoint in self.config.otlp_logs_endpoints:
            provider.add_log_record_processor(
                BatchLogRecordProcessor(OTLPLogExporter(endpoint=endpoint))
            )
        self.logger_provider = provider
        self.log_handler = OTLPLogHandler(
            provider.get_logger(INSTRUMENTATION_NAME), self.attributes
        )
        logging.getLogger("dbos").addHandler(self.log_handler)

    def stop(self) -> None:
        if self.log_handler is not None:
            logging.getLogger("dbos").removeHandler(self.log_handler)
            self.log_handler = None
        closers: list[Any] = [p.shutdown for p in self.processors]
        if self.logger_provider is not None:
            closers.append(self.logger_provider.shutdown)
        self.processors, self.logger_provider = [], None
        _run_bounded(closers, SHUTDOWN_TIMEOUT_SEC)

    def abandon(self) -> None:
        for processor in self.processors:
            processor.attached = False
        if self.log_handler is not None:
            logging.getLogger("dbos").removeHandler(self.log_handler)

    # -- spans ------------------------------------------------------------------------

    def start_context(
        self, name: str, workflow_id: str, mode: str, queue_name: str | None
    ) -> str | None:
        current = trace.get_current_span()
        context = current.get_span_context()
        attributes: dict[str, Any] = {"dbos.workflow.id": workflow_id, "dbos.workflow.name": name}
        if queue_name is not None:
            attributes["dbos.queue.name"] = queue_name
        if context.is_valid:
            if mode == "enqueue":
                current.add_event("dbos.enqueue", attributes)
            return traceparent_of(context)
        # No caller span: a short root span names the trace every execution will join.
        root = self.tracer.start_span(
            f"{mode} {name}", context=Context(), attributes={**attributes, **self.attributes}
        )
        root.end()
        return traceparent_of(root.get_span_context())

    def begin_workflow(self, state: WorkflowState) -> Scope:
        rt = self.rt
        attributes: dict[str, Any] = {
            "dbos.workflow.id": state.workflow_id,
            "dbos.workflow.name": state.name,
            "dbos.workflow.recovery_attempt": max(0, state.recovery_attempts - 1),
            "dbos.executor.id": rt.executor_id if rt is not None else "",
            "dbos.application.version": rt.app_version if rt is not None else "",
        }
        if state.queue_name is not None:
            attributes["dbos.queue.name"] = state.queue_name
        if state.authenticated_user is not None:
            attributes["dbos.authenticated.user"] = state.authenticated_user
        if state.authenticated_roles:
            attributes["dbos.authenticated.roles"] = list(state.authenticated_roles)
        if state.request_id is not None:
            attributes["dbos.request.id"] = state.request_id
        attributes.update(self.attributes)
        stored = parse_traceparent(state.trace_context)
        previous = otel_context.get_current()
        parent = (
            trace.set_span_in_context(NonRecordingSpan(stored), Context())
            if stored is not None
            else previous
        )
        span = self.tracer.start_span(state.name, context=parent, attributes=attributes)
        otel_context.attach(trace.set_span_in_context(span, previous))
        return Scope(span, previous)

    def end_workflow(self, scope: Scope, status: str, error: BaseException | None) -> None:
        span = scope.span
        # Restore by value rather than by token: a generator closed in another context
        # (garbage collected) must not fail to detach.
        otel_context.attach(scope.previous)
        span.set_attribute("dbos.workflow.status", status)
        if status == "ERROR" and error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        span.end()

    def begin_step(self, state: WorkflowState, function_id: int, name: str, kind: str) -> Scope:
        attributes: dict[str, Any] = {
            "dbos.workflow.id": state.workflow_id,
            "dbos.step.function_id": function_id,
            "dbos.step.name": name,
            "dbos.step.kind": kind,
            **self.attributes,
        }
        previous = otel_context.get_current()
        span = self.tracer.start_span(name, context=previous, attributes=attributes)
        otel_context.attach(trace.set_span_in_context(span, previous))
        return Scope(span, previous)

    def end_step(self, scope: Scope, error: BaseException | None, attempt: int) -> None:
        span = scope.span
        otel_context.attach(scope.previous)
        span.set_attributes(
            {
                "dbos.step.attempt": attempt,
                "dbos.step.retries": attempt - 1,
                "dbos.step.status": "SUCCESS" if error is None else "ERROR",
            }
        )
        if error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        span.end()

    def event(self, name: str, attributes: dict[str, Any]) -> None:
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event(name, attributes)


def _span_processor(endpoint: str) -> SpanProcessor:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    return BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint))


def _run_bounded(closers: Sequence[Any], timeout: float) -> None:
    """Call each closer in its own daemon thread; wait for all at most ``timeout`` seconds.

    The SDK's shutdown flushes what is buffered and may retry a dead collector for
    its export timeout; destroy() must not wait for that.
    """
    threads = [threading.Thread(target=c, name="dbos-otel-shutdown", daemon=True) for c in closers]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
