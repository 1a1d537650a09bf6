"""The admin HTTP server: health and workflow management over JSON, for operators.

Started as a runtime service when ``run_admin_server`` is set. It listens on 127.0.0.1
unless ``admin_host`` says otherwise, and refuses (at configuration) to listen anywhere
else without ``admin_token`` (or ``DBOS_ADMIN_TOKEN``). Every route but the health check:

- answers only a ``Host`` that is a loopback name, the address it listens on, or one of
  ``admin_allowed_hosts`` (so a web page cannot reach it by DNS rebinding), and refuses
  a state-changing request whose ``Origin`` is not one of those;
- with a token, needs ``Authorization: Bearer <token>``; all of this is decided from
  the request head, before any body is read;
- lists at most ``MAX_LIST_LIMIT`` workflows (``DEFAULT_LIST_LIMIT`` without a limit),
  and shows inputs and outputs without unpickling them (``operator_views``);
- answers a failure with a stable code; a 500 carries no details (they are logged).

Routes (the table is ``ROUTES`` below; ``extra_routes`` lets other modules add theirs)::

    GET  /health                        {"status": "healthy"} (also /dbos-healthz)
    GET  /workflows?status=..&...        list (the filters of DBOS.list_workflows)
    POST /workflows                      list, filters as a JSON object
    GET  /workflows/<id>                 one workflow's status
    GET  /workflows/<id>/steps           its steps
    POST /workflows/<id>/cancel          cancel it
    POST /workflows/<id>/resume          resume it now in this process
    POST /workflows/<id>/fork            {"start_step": n, "new_workflow_id"?, "application_version"?}
    GET  /queues                         per queue, how many are ENQUEUED and PENDING
    GET  /queues/workflows?queue_name=   the workflows currently on queues
    GET  /metrics                        Prometheus metrics (with enable_metrics)
    GET  /dashboard/...                  the HTML dashboard (dbos_core/dashboard)
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .admin_http import (
    AdminHTTPServer,
    AdminRequest,
    AdminResponse,
    HTTPError,
    Route,
    RouteTable,
    json_response,
)
from .identifiers import check_lookup_id
from .operator_views import (
    DEFAULT_LIST_LIMIT,
    MAX_LIST_LIMIT,
    bounded_limit,
    get_workflow_view,
    list_step_views,
    list_workflow_views,
)
from .runtime.runtime import Runtime

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
_STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})

# Other modules add routes here: each is called with the route table and the runtime
# when an admin server starts.
extra_routes: list[Callable[[RouteTable, Runtime], None]] = []

__all__ = ["DEFAULT_LIST_LIMIT", "MAX_LIST_LIMIT", "AdminServer", "extra_routes"]


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


def _json_filters(body: Any) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise HTTPError(400, "BAD_REQUEST", "The request body must be a JSON object of filters")
    unknown = sorted(set(body) - _KNOWN_FILTERS)
    if unknown:
        raise HTTPError(400, "BAD_REQUEST", f"Unknown filter(s) {unknown}")
    return dict(body)


def _split_host(value: str) -> str:
    """The host name of a Host header or an Origin's authority, without the port."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class AdminServer:
    """A runtime service: ``start()`` binds and serves, ``stop()`` returns fast."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.host = rt.config.admin_host
        self.port = rt.config.admin_port
        self.token = rt.config.admin_token
        # The opt-in to decode stored values with the application's serializer.
        self.value_serializer = rt.serializer if rt.config.admin_deserialize_values else None
        self.allowed_hosts = set(_LOOPBACK_NAMES) | set(rt.config.admin_allowed_hosts)
        if self.host.lower() not in _WILDCARD_HOSTS:
            self.allowed_hosts.add(self.host.strip("[]").lower())
        self.routes = RouteTable()
        for method, pattern, handler, public in self._route_list():
            self.routes.add(method, pattern, handler, public=public)
        from .dashboard.admin_mount import add_dashboard_routes

        # The HTML dashboard at /dashboard (its session cookie stands in for the token).
        add_dashboard_routes(self.routes, rt, self.token)
        for add_routes in extra_routes:
            add_routes(self.routes, rt)
        self._http: AdminHTTPServer | None = None

    def _route_list(self) -> list[tuple[str, str, Callable[[AdminRequest], AdminResponse], bool]]:
        return [
            ("GET", "/health", self._health, True),
            ("GET", "/dbos-healthz", self._health, True),
            ("GET", "/workflows", self._list_from_query, False),
            ("POST", "/workflows", self._list_from_body, False),
            ("GET", "/workflows/{workflow_id}", self._get_workflow, False),
            ("GET", "/workflows/{workflow_id}/steps", self._steps, False),
            ("POST", "/workflows/{workflow_id}/cancel", self._cancel, False),
            ("POST", "/workflows/{workflow_id}/resume", self._resume, False),
            ("POST", "/workflows/{workflow_id}/fork", self._fork, False),
            ("GET", "/queues", self._queues, False),
            ("GET", "/queues/workflows", self._queued_workflows, False),
            ("GET", "/metrics", self._metrics, False),
        ]

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        server = AdminHTTPServer(self.host, self.port, self.routes, self.gate, self.rt.logger)
        try:
            server.start()
        except OSError as exc:
            # A busy port must not stop the application; operators see why in the log.
            self.rt.logger.warning(
                "Admin server not started: cannot listen on %s:%d (%s)", self.host, self.port, exc
            )
            return
        self._http = server
        self.port = server.port
        self.rt.logger.info("Admin server listening on http://%s:%d", self.host, self.port)

    def stop(self) -> None:
        if self._http is not None:
            self._http.stop()
            self._http = None

    # -- the gate: decided from the request head, before any body is read ---------------

    def host_allowed(self, host: str) -> bool:
        if "*" in self.allowed_hosts:
            return True
        return host.strip().lower() in self.allowed_hosts or _split_host(host) in self.allowed_hosts

    def gate(self, request: AdminRequest, route: Route | None) -> None:
        if route is not None and route.public:
            return
        host = request.headers.get("host")
        if not host or not self.host_allowed(host):
            raise HTTPError(
                403,
                "HOST_NOT_ALLOWED",
                "This Host is not allowed; add it to DBOSConfig['admin_allowed_hosts']",
            )
        if self.token is not None:
            given = request.headers.get("authorization", "")
            expected = f"Bearer {self.token}"
            if not hmac.compare_digest(given.encode(), expected.encode()) and not (
                route is not None and route.accepts is not None and route.accepts(request)
            ):
                raise HTTPError(401, "UNAUTHORIZED", "Missing or wrong bearer token")
        origin = request.headers.get("origin")
        if request.method in _STATE_CHANGING and origin is not None:
            authority = urlsplit(origin).netloc
            if not authority or not self.host_allowed(authority):
                raise HTTPError(
                    403, "ORIGIN_NOT_ALLOWED", "Requests from this Origin may not change anything"
                )

    # -- routes ----------------------------------------------------------------------

    def _health(self, request: AdminRequest) -> AdminResponse:
        return json_response(200, {"status": "healthy"})

    def _list(self, filters: dict[str, Any], **extra: Any) -> AdminResponse:
        from .storage import management as ops

        filters["limit"] = bounded_limit(filters.get("limit"))
        checked = ops.build_filters(**filters, **extra)
        return json_response(
            200, list_workflow_views(self.rt.sysdb, checked, self.value_serializer)
        )

    def _list_from_query(self, request: AdminRequest) -> AdminResponse:
        return self._list(_filters_from_query(request.query))

    def _list_from_body(self, request: AdminRequest) -> AdminResponse:
        return self._list(_json_filters(request.json()))

    def _get_workflow(self, request: AdminRequest) -> AdminResponse:
        view = get_workflow_view(
            self.rt.sysdb, request.params["workflow_id"], self.value_serializer
        )
        return json_response(200, view)

    def _steps(self, request: AdminRequest) -> AdminResponse:
        steps = list_step_views(self.rt.sysdb, request.params["workflow_id"], self.value_serializer)
        return json_response(200, steps)

    def _cancel(self, request: AdminRequest) -> AdminResponse:
        from .runtime import management

        workflow_id = check_lookup_id(request.params["workflow_id"])
        management.cancel_workflow(self.rt, workflow_id)
        return json_response(
            200, {"workflow_id": workflow_id, "status": self._status_of(workflow_id)}
        )

    def _resume(self, request: AdminRequest) -> AdminResponse:
        from .runtime import management

        workflow_id = check_lookup_id(request.params["workflow_id"])
        management.resume_workflow(self.rt, workflow_id)
        return json_response(
            200, {"workflow_id": workflow_id, "status": self._status_of(workflow_id)}
        )

    def _fork(self, request: AdminRequest) -> AdminResponse:
        from .api_management import fork_in_runtime

        body = request.json()
        if not isinstance(body, dict) or "start_step" not in body:
            raise HTTPError(400, "BAD_REQUEST", 'fork needs a JSON body {"start_step": <int>}')
        unknown = sorted(set(body) - {"start_step", "new_workflow_id", "application_version"})
        if unknown:
            raise HTTPError(400, "BAD_REQUEST", f"Unknown fork field(s) {unknown}")
        new_id = body.get("new_workflow_id") or str(uuid.uuid4())
        forked = fork_in_runtime(
            self.rt,
            request.params["workflow_id"],
            body["start_step"],
            body.get("application_version"),
            new_id,
        )
        return json_response(200, {"workflow_id": forked})

    def _queues(self, request: AdminRequest) -> AdminResponse:
        from .storage import management as ops

        return json_response(200, ops.queue_summary(self.rt.sysdb))

    def _queued_workflows(self, request: AdminRequest) -> AdminResponse:
        return self._list(_filters_from_query(request.query), queues_only=True)

    def _metrics(self, request: AdminRequest) -> AdminResponse:
        exposition = self.rt.telemetry.metrics_exposition()
        if exposition is None:
            raise HTTPError(
                404, "METRICS_DISABLED", "Metrics are off: set enable_metrics in DBOSConfig"
            )
        body, content_type = exposition
        return AdminResponse(200, body, content_type)

    def _status_of(self, workflow_id: str) -> str | None:
        row = self.rt.sysdb.workflows.get_outcome_row(workflow_id)
        return None if row is None else str(row[0])
