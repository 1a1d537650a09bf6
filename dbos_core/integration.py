"""The seam for web-framework adapters (FastAPI, Flask, Django).

Adapters use only the public API plus this module: launching and destroying,
a request scope (idempotency key, request id, lazily resolved user), and the
mapping of DBOS errors to HTTP responses. The core never imports a framework.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .error import DBOSException, DBOSInitializationError
from .runtime import context as ctx
from .runtime import global_state

UserResolver = Callable[[], tuple[str | None, list[str] | None]]

DEFAULT_IDEMPOTENCY_HEADER = "dbos-idempotency-key"
DEFAULT_REQUEST_ID_HEADER = "x-request-id"


def is_configured() -> bool:
    """True once ``DBOS(config=...)`` has run in this process."""
    return global_state.peek_runtime() is not None


def is_launched() -> bool:
    rt = global_state.peek_runtime()
    return rt is not None and rt.launched and not rt.stopped and not rt.forked_away()


def instance_token() -> object | None:
    """An opaque identity of the configured DBOS: it changes whenever DBOS is re-created,
    so an adapter can tell the instance it launched from one launched by someone else."""
    return global_state.peek_runtime()


def launched_before_fork() -> bool:
    """True in a child forked from a process where DBOS was launched."""
    rt = global_state.peek_runtime()
    return rt is not None and rt.launched and not rt.stopped and rt.forked_away()


def launch() -> None:
    """Launch the configured DBOS once; later calls do nothing."""
    from .dbos import DBOS

    if not is_launched():
        DBOS.launch()


def destroy() -> None:
    from .dbos import DBOS

    DBOS.destroy()


def validate_config(config: dict[str, Any]) -> None:
    """Raise a DBOSConfigurationError naming what is wrong; no I/O (adapters check early)."""
    from .config import resolve_config

    resolve_config(config)


def config_keys() -> frozenset[str]:
    """Every key a DBOSConfig accepts (adapters map their settings onto these)."""
    from .config import KNOWN_KEYS

    return KNOWN_KEYS


def migrate_system_database() -> None:
    """Create or upgrade the configured system database, without launching."""
    rt = global_state.peek_runtime()
    if rt is None:
        raise DBOSInitializationError("Configure DBOS(config=...) before migrating")
    rt.sysdb.open(rt.config.database_connect_timeout)


@contextmanager
def management_session() -> Iterator[None]:
    """Open the configured DBOS to inspect or change workflows from a short-lived process
    (a CLI command): it connects and migrates but recovers nothing and starts no queue
    or schedule service, so it never takes over another process's work. Destroyed at exit
    unless DBOS was already launched."""
    from .dbos import DBOS, _instance_lock

    with _instance_lock:
        rt = global_state.peek_runtime()
        if rt is None:
            raise DBOSInitializationError("Configure DBOS(config=...) before opening a session")
        already = rt.launched
        if not already:
            if rt.stopped:
                raise DBOSInitializationError("This DBOS instance was destroyed")
            rt.launch(start_services=False)
    try:
        yield
    finally:
        if not already:
            DBOS.destroy()


@contextmanager
def request_scope(
    *,
    idempotency_key: str | None = None,
    request_id: str | None = None,
    user_resolver: UserResolver | None = None,
    assumed_role: str | None = None,
) -> Iterator[ctx.RequestContext]:
    """Scope one request: the key names its first workflow, the user is resolved lazily.

    The scope is a context variable, so it ends with the block (or the task) and
    never reaches another request or work started after the response.
    """
    request = ctx.RequestContext(
        idempotency_key=idempotency_key or None,
        request_id=request_id,
        user_resolver=user_resolver,
        assumed_role=assumed_role,
    )
    token = ctx.request_context.set(request)
    try:
        yield request
    finally:
        ctx.request_context.reset(token)


def enter_request_scope(request: ctx.RequestContext) -> Any:
    """For frameworks whose hooks cannot wrap a block (Flask): returns a token."""
    return ctx.request_context.set(request)


def exit_request_scope(token: Any) -> None:
    ctx.request_context.reset(token)


def new_request_context(
    *,
    idempotency_key: str | None = None,
    request_id: str | None = None,
    user_resolver: UserResolver | None = None,
    assumed_role: str | None = None,
) -> ctx.RequestContext:
    return ctx.RequestContext(
        idempotency_key=idempotency_key or None,
        request_id=request_id,
        user_resolver=user_resolver,
        assumed_role=assumed_role,
    )


def close_idempotency_key(request: ctx.RequestContext) -> None:
    """The response is sent: work started from now on (background tasks) gets its own ID."""
    request.key_used = True


def current_request() -> ctx.RequestContext | None:
    return ctx.request_context.get()


def error_response(exc: DBOSException) -> tuple[int, dict[str, Any]]:
    """The HTTP status and JSON body an adapter should send for a DBOS error."""
    body: dict[str, Any] = {"error": exc.code, "message": exc.message}
    workflow_id = getattr(exc, "workflow_id", None)
    if workflow_id is not None:
        body["workflow_id"] = workflow_id
    return exc.http_status, body


RequestContext = ctx.RequestContext


def set_transaction_backend_factory(factory: Any) -> None:
    """Make ``@DBOS.transaction`` use another application-database backend.

    ``factory(runtime)`` returns a ``dbos_core.transactions.TransactionBackend`` (the
    Django adapter supplies one backed by the Django ORM); ``None`` restores the
    SQLAlchemy backend. Call it before the first transaction runs.
    """
    from .transactions.protocol import set_backend_factory

    set_backend_factory(factory)


def add_after_work_hook(hook: Callable[[], None]) -> None:
    """Call ``hook()`` on a DBOS workflow thread after each workflow it ran there (once).

    For per-thread resources of a framework: the Django adapter closes the thread's
    database connections there, as Django does at the end of a request.
    """
    from .runtime.runtime import after_work_hooks

    if hook not in after_work_hooks:
        after_work_hooks.append(hook)


def metrics_exposition() -> tuple[bytes, str]:
    """The Prometheus text of the running DBOS and its content type, for the adapters'
    metrics views (each mounts it behind its own framework's authentication)."""
    rt = global_state.get_runtime()
    exposition = rt.telemetry.metrics_exposition()
    if exposition is None:
        from .error import DBOSMetricsDisabledError

        raise DBOSMetricsDisabledError("Metrics are off: set enable_metrics in DBOSConfig")
    return exposition
