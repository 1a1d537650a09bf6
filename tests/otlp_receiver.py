"""A real OTLP/HTTP receiver for tests: an HTTP server on 127.0.0.1 that decodes the
protobuf bodies posted to /v1/traces and /v1/logs with ``opentelemetry-proto``.

``hang=True`` makes it a collector that accepts requests and never answers them
(until ``release()``): the worst a collector can do to an exporter.
"""

from __future__ import annotations

import gzip
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return None if kind is None else getattr(value, kind)


def _attributes(pairs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in pairs if isinstance(kv, KeyValue)}


@dataclass
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]
    status_code: int
    resource: dict[str, Any]


@dataclass
class ReceivedLog:
    body: Any
    severity_text: str
    trace_id: str
    span_id: str
    attributes: dict[str, Any]
    resource: dict[str, Any]


@dataclass
class OTLPReceiver:
    hang: bool = False
    spans: list[ReceivedSpan] = field(default_factory=list)
    logs: list[ReceivedLog] = field(default_factory=list)
    requests: int = 0
    port: int = 0
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _released: threading.Event = field(default_factory=threading.Event)

    @property
    def traces_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/traces"

    @property
    def logs_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/logs"

    def release(self) -> None:
        """Let a hanging receiver answer (and drop) what it holds."""
        self._released.set()

    def _record(self, path: str, body: bytes) -> bytes:
        with self._changed:
            self.requests += 1
            self._changed.notify_all()
        if self.hang:
            self._released.wait(60)
        if path == "/v1/traces":
            request = ExportTraceServiceRequest.FromString(body)
            spans = [
                ReceivedSpan(
                    name=span.name,
                    trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(),
                    parent_span_id=span.parent_span_id.hex(),
                    attributes=_attributes(span.attributes),
                    events=[(e.name, _attributes(e.attributes)) for e in span.events],
                    status_code=span.status.code,
                    resource=_attributes(rs.resource.attributes),
                )
                for rs in request.resource_spans
                for ss in rs.scope_spans
                for span in ss.spans
            ]
            with self._changed:
                self.spans.extend(spans)
                self._changed.notify_all()
            return ExportTraceServiceResponse().SerializeToString()
        request_logs = ExportLogsServiceRequest.FromString(body)
        logs = [
            ReceivedLog(
                body=_value(record.body),
                severity_text=record.severity_text,
                trace_id=record.trace_id.hex(),
                span_id=record.span_id.hex(),
                attributes=_attributes(record.attributes),
                resource=_attributes(rl.resource.attributes),
            )
            for rl in request_logs.resource_logs
            for sl in rl.scope_logs
            for record in sl.log_records
        ]
        with self._changed:
            self.logs.extend(logs)
            self._changed.notify_all()
        return ExportLogsServiceResponse().SerializeToString()

    def wait_for(self, condition: Callable[[OTLPReceiver], bool], timeout: float = 30) -> None:
        """Block until ``condition(self)`` holds, woken by every request received."""
        with self._changed:
            if not self._changed.wait_for(lambda: condition(self), timeout):
                names = [s.name for s in self.spans]
                raise AssertionError(f"OTLP receiver: condition not met; spans {names}")

    def spans_named(self, name: str) -> list[ReceivedSpan]:
        with self._changed:
            return [s for s in self.spans if s.name == name]

    def one_span(self, name: str, **attributes: Any) -> ReceivedSpan:
        found = [
            s
            for s in self.spans_named(name)
            if all(s.attributes.get(k) == v for k, v in attributes.items())
        ]
        assert len(found) == 1, (name, attributes, [s.attributes for s in self.spans])
        return found[0]

    def children_of(self, span: ReceivedSpan) -> list[ReceivedSpan]:
        with self._changed:
            return [s for s in self.spans if s.parent_span_id == span.span_id]


@contextmanager
def otlp_receiver(*, hang: bool = False) -> Iterator[OTLPReceiver]:
    receiver = OTLPReceiver(hang=hang)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            encoding = (self.headers.get("Content-Encoding") or "").lower()
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            try:
                answer = receiver._record(self.path, body)
            except Exception as exc:  # a malformed body is a test failure: say so
                self.send_error(400, str(exc))
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release()
        server.shutdown()
        server.server_close()
        thread.join(5)
