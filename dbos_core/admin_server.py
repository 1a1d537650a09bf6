"""The admin HTTP server: health and workflow management over JSON, for operators.

Standard library only (``http.server`` in one thread), started as a runtime
service when ``run_admin_server`` is set. It listens on 127.0.0.1 unless
``admin_host`` says otherwise, and with ``admin_token`` (or ``DBOS_ADMIN_TOKEN``)
every request but the health check needs ``Authorization: Bearer <token>``.

Routes::

    GET  /health                       {"status": "healthy"}
    GET  /workflows?status=..&...       list (the filters of DBOS.list_workflows)
    POST /workflows                     list, filters as a JSON object
    GET  /workflows/<id>                one workflow's status
    GET  /workflows/<id>/steps          its steps
    POST /workflows/<id>/cancel         cancel it
    POST /workflows/<id>/resume         resume it now in this process
    POST /workflows/<id>/fork           {"start_step": n, "new_workflow_id"?, "application_version"?}
    GET  /queues                        per queue, how many are ENQUEUED and PENDING
    GET  /queues/workflows?queue_name=  the workflows currently on queues
    GET  /metrics                       Prometheus metrics (with enable_metrics)
"""

from __future__ import annotations

import hmac
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .error import DBOSException, DBOSNonExistentWorkflowError
from .runtime.runtime import Runtime

MAX_BODY_BYTES = 1 << 20
_INT_FILTERS = ("limit", "offset")
_LIST_FILTERS = ("workflow_ids", "status")
_KNOWN_FILTERS = frozenset(
    {
        "workflow_ids",
        "status",
        "start_time",
        "end_time",
        "name",
        "app_version",
        "user",
        "limit",
        "offset",
        "sort_desc",
        "workflow_id_prefix",
        "queue_name",
    }
)


class RawBody:
    """A response that is not JSON (the Prometheus text of /metrics)."""

    def __init__(self, body: bytes, content_type: str) -> None:
        self.body = body
        self.content_type = content_type


class HTTPError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _filters_from_query(query: str) -> dict[str, Any]:
    """Query-string filters as the typed values ``build_filters`` expects."""
    raw = parse_qs(query, keep_blank_values=False)
    filters: dict[str, Any] = {}
    for key, values in raw.items():
        if key not in _KNOWN_FILTERS:
            raise HTTPError(400, "BAD_REQUEST", f"Unknown filter {key!r}")
        if key in _LIST_FILTERS:
            filters[key] = [v for value in values for v in value.split(",") if v]
        elif key in _INT_FILTERS:
            try:
                filters[key] = int(values[-1])
            except ValueError:
                raise HTTPError(
                    400, "BAD_REQUEST", f"{key} must be an integer, got {values[-1]!r}"
                ) from None
        elif key == "sort_desc":
            flag = values[-1].lower()
            if flag not in ("true", "false", "1", "0"):
                raise HTTPError(
                    400, "BAD_REQUEST", f"sort_desc must be true or false, got {flag!r}"
                )
            filters[key] = flag in ("true", "1")
        else:
            filters[key] = values[-1]
    return filters


class AdminServer:
    """A runtime service: ``start()`` binds and serves in a thread, ``stop()`` returns fast."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.host = rt.config.admin_host
        self.port = rt.config.admin_port
        self.token = rt.config.admin_token
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        handler = _make_handler(self)
        try:
            server = ThreadingHTTPServer((self.host, self.port), handler)
        except OSError as exc:
            # A busy port must not stop the application; operators see why in the log.
            self.rt.logger.warning(
                "Admin server not started: cannot listen on %s:%d (%s)", self.host, self.port, exc
            )
            return
        server.daemon_threads = True
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="dbos-admin",
            daemon=True,
        )
        self._thread.start()
        self.rt.logger.info("Admin server listening on http://%s:%d", self.host, self.port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    # -- routing -------------------------------------------------------------------

    def handle(self, method: str, path: str, query: str, body: Any) -> tuple[int, Any]:
        from .storage import management as ops

        parts = [unquote(p) for p in path.strip("/").split("/") if p]
        sysdb = self.rt.sysdb
        if parts in (["health"], ["dbos-healthz"]):
            self._allow(method, "GET")
            return 200, {"status": "healthy"}
        if parts == ["workflows"]:
            self._allow(method, "GET", "POST")
            filters = _filters_from_query(query) if method == "GET" else self._json_filters(body)
            found = ops.list_workflows(sysdb, ops.build_filters(**filters))
            return 200, [w.to_dict() for w in found]
        if parts == ["metrics"]:
            self._allow(method, "GET")
            exposition = self.rt.telemetry.metrics_exposition()
            if exposition is None:
                raise HTTPError(
                    404, "METRICS_DISABLED", "Metrics are off: set enable_metrics in DBOSConfig"
                )
            return 200, RawBody(*exposition)
        if parts == ["queues"]:
            self._allow(method, "GET")
            return 200, ops.queue_summary(sysdb)
        if parts == ["queues", "workflows"]:
            self._allow(method, "GET")
            filters = _filters_from_query(query)
            checked = ops.build_filters(queues_only=True, load_output=False, **filters)
            return 200, [w.to_dict() for w in ops.list_workflows(sysdb, checked)]
        if len(parts) == 2 and parts[0] == "workflows":
            self._allow(method, "GET")
            return 200, ops.get_workflow(sysdb, parts[1]).to_dict()
        if len(parts) == 3 and parts[0] == "workflows":
            return self._workflow_action(method, parts[1], parts[2], body)
        raise HTTPError(404, "NOT_FOUND", f"No admin route {path!r}")

    def _workflow_action(
        self, method: str, workflow_id: str, action: str, body: Any
    ) -> tuple[int, Any]:
        from .api_management import fork_in_runtime
        from .runtime import management
        from .storage import management as ops

        if action == "steps":
            self._allow(method, "GET")
            return 200, [ops.step_to_dict(s) for s in ops.list_steps(self.rt.sysdb, workflow_id)]
        if action == "cancel":
            self._allow(method, "POST")
            management.cancel_workflow(self.rt, workflow_id)
            return 200, {"workflow_id": workflow_id, "status": self._status_of(workflow_id)}
        if action == "resume":
            self._allow(method, "POST")
            management.resume_workflow(self.rt, workflow_id)
            return 200, {"workflow_id": workflow_id, "status": self._status_of(workflow_id)}
        if action == "fork":
            self._allow(method, "POST")
            if not isinstance(body, dict) or "start_step" not in body:
                raise HTTPError(400, "BAD_REQUEST", 'fork needs a JSON body {"start_step": <int>}')
            unknown = sorted(set(body) - {"start_step", "new_workflow_id", "application_version"})
            if unknown:
                raise HTTPError(400, "BAD_REQUEST", f"Unknown fork field(s) {unknown}")
            new_id = body.get("new_workflow_id") or str(uuid.uuid4())
            if not isinstance(new_id, str):
                raise HTTPError(400, "BAD_REQUEST", "new_workflow_id must be a string")
            forked = fork_in_runtime(
                self.rt, workflow_id, body["start_step"], body.get("application_version"), new_id
            )
            return 200, {"workflow_id": forked}
        raise HTTPError(404, "NOT_FOUND", f"Unknown workflow action {action!r}")

    def _status_of(self, workflow_id: str) -> str | None:
        row = self.rt.sysdb.workflows.get_outcome_row(workflow_id)
        return None if row is None else str(row[0])

    @staticmethod
    def _allow(method: str, *allowed: str) -> None:
        if method not in allowed:
            raise HTTPError(
                405, "METHOD_NOT_ALLOWED", f"Use {' or '.join(allowed)} here, not {method}"
            )

    @staticmethod
    def _json_filters(body: Any) -> dict[str, Any]:
        if body is None:
            return {}
        if not isinstance(body, dict):
            raise HTTPError(400, "BAD_REQUEST", "The request body must be a JSON object of filters")
        unknown = sorted(set(body) - _KNOWN_FILTERS)
        if unknown:
            raise HTTPError(400, "BAD_REQUEST", f"Unknown filter(s) {unknown}")
        return dict(body)

    def authorized(self, header: str | None) -> bool:
        if self.token is None:
            return True
        expected = f"Bearer {self.token}"
        return header is not None and hmac.compare_digest(header.encode(), expected.encode())


def _make_handler(server: AdminServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "dbos-admin"

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def do_PUT(self) -> None:
            self._dispatch("PUT")

        def do_DELETE(self) -> None:
            self._dispatch("DELETE")

        def do_PATCH(self) -> None:
            self._dispatch("PATCH")

        def _dispatch(self, method: str) -> None:
            url = urlsplit(self.path)
            try:
                body = self._read_body()
                path = url.path.rstrip("/") or "/"
                if path not in ("/health", "/dbos-healthz") and not server.authorized(
                    self.headers.get("Authorization")
                ):
                    raise HTTPError(401, "UNAUTHORIZED", "Missing or wrong bearer token")
                status, payload = server.handle(method, path, url.query, body)
            except HTTPError as exc:
                status, payload = exc.status, {"error": exc.code, "message": exc.message}
            except DBOSNonExistentWorkflowError as exc:
                status, payload = 404, {"error": exc.code, "message": exc.message}
            except DBOSException as exc:
                status = exc.http_status if 400 <= exc.http_status < 600 else 500
                payload = {"error": exc.code, "message": exc.message}
            except Exception as exc:
                server.rt.logger.exception("Admin request %s %s failed", method, self.path)
                status, payload = 500, {"error": "INTERNAL", "message": str(exc)}
            self._send(status, payload)

        def _read_body(self) -> Any:
            length_text = self.headers.get("Content-Length")
            if not length_text:
                return None
            try:
                length = int(length_text)
            except ValueError:
                raise HTTPError(400, "BAD_REQUEST", "Content-Length is not a number") from None
            if length < 0 or length > MAX_BODY_BYTES:
                raise HTTPError(
                    413, "TOO_LARGE", f"Request bodies are limited to {MAX_BODY_BYTES} bytes"
                )
            raw = self.rfile.read(length)
            if not raw.strip():
                return None
            try:
                return json.loads(raw)
            except ValueError as exc:
                raise HTTPError(400, "BAD_REQUEST", f"The body is not valid JSON: {exc}") from None

        def _send(self, status: int, payload: Any) -> None:
            if isinstance(payload, RawBody):
                data, content_type = payload.body, payload.content_type
            else:
                data, content_type = json.dumps(payload, default=str).encode(), "application/json"
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            if status >= 400:
                # The request body may be unread; do not reuse this connection.
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            server.rt.logger.debug("admin: " + format, *args)

    return Handler
