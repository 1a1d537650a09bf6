"""The seam for web-framework adapters (FastAPI, Flask, Django).

Adapters use only the public API plus this module, so that they differ only in how they
hook into their framework. Everything they must agree on is decided here once:

- lifecycle: configure, launch once per process (``ensure_launched``, refusing a DBOS
  launched before a fork), destroy, and the ``worker`` loop of their CLI commands;
- a request scope: the idempotency key and request id read from header bytes (UTF-8,
  validated: a bad key is a 400 before anything is written), the user resolved lazily
  into one ``Identity`` shape, the key closed when the response is sent;
- the mapping of DBOS errors to HTTP responses with stable codes (a 5xx never carries
  the error's details, which may name hosts, users or databases: those go to the log);
- operator views of stored workflows that never unpickle (``operator_views``);
- adapter settings read the same way (``setting_bool``).

The core never imports a framework.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .error import (
    DBOSConfigurationError,
    DBOSException,
    DBOSInitializationError,
    DBOSInvalidIDError,
)
from .identifiers import check_id
from .runtime import context as ctx
from .runtime import global_state

logger = logging.getLogger("dbos.integration")

DEFAULT_IDEMPOTENCY_HEADER = "dbos-idempotency-key"
DEFAULT_REQUEST_ID_HEADER = "x-request-id"

RequestContext = ctx.RequestContext


# -- lifecycle --------------------------------------------------------------------------


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


LAUNCHED_BEFORE_FORK_MESSAGE = (
    "DBOS was launched in a parent process before it forked (for example gunicorn "
    "--preload with a launch at import): its threads and connections do not survive a "
    "fork. Launch in each worker instead: on the first request, in the server's post-fork "
    "hook, or in the app's startup."
)


class _ProcessLaunch:
    """Launch DBOS at most once per process, whichever adapter (or app) asks first.

    One process runs one DBOS. The guard remembers which instance it launched, in which
    process, and for which owner (an adapter's app object) with which configuration, so
    a second app with another configuration is refused instead of silently sharing.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.instance: object | None = None
        self.pid: int | None = None
        self.owner: object | None = None
        self.owner_config: Mapping[str, Any] | None = None
        self.launched_by_guard = False
        self.atexit_registered = False

    def after_fork_in_child(self) -> None:
        self.lock = threading.Lock()  # another thread may have held it at the fork

    def is_current(self) -> bool:
        return (
            self.instance is not None
            and self.instance is instance_token()
            and self.pid == os.getpid()
            and is_launched()
        )

    def ensure_launched(
        self,
        configure: Callable[[], None] | None = None,
        *,
        owner: object | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> bool:
        """Launch unless this process already runs DBOS; True when this call launched it.

        ``configure`` runs first (``DBOS(config=...)``) when nothing is launched yet. A DBOS
        the application launched itself is adopted. Raises when DBOS was launched in a
        parent before a fork, or when another owner launched with another configuration.
        """
        if self.is_current() and (owner is None or owner is self.owner):
            return False  # the fast path of every request once launched
        with self.lock:
            if launched_before_fork():
                raise DBOSInitializationError(LAUNCHED_BEFORE_FORK_MESSAGE)
            if is_launched():
                if not self.is_current():
                    self._own(owner, config, launched=False)  # launched by the app: adopt
                elif (
                    owner is not None
                    and self.owner is not None
                    and owner is not self.owner
                    and dict(config or {}) != dict(self.owner_config or {})
                ):
                    raise DBOSInitializationError(
                        "DBOS is already launched in this process for another app with a "
                        "different configuration; one process runs one DBOS (destroy it first)"
                    )
                return False
            if configure is not None:
                configure()
            if not is_configured():
                raise DBOSInitializationError(
                    "DBOS is not configured: give the adapter a configuration or call "
                    "DBOS(config=...) before launching"
                )
            launch()
            self._own(owner, config, launched=True)
            if not self.atexit_registered:
                atexit.register(self.destroy_at_exit)
                self.atexit_registered = True
            return True

    def _own(self, owner: object | None, config: Mapping[str, Any] | None, launched: bool) -> None:
        self.instance, self.pid = instance_token(), os.getpid()
        self.owner, self.owner_config = owner, config
        self.launched_by_guard = launched

    def launched_here(self) -> bool:
        """True while the running DBOS is the one this guard launched in this process."""
        return self.launched_by_guard and self.is_current()

    def destroy(self) -> None:
        with self.lock:
            self.instance, self.pid, self.owner, self.owner_config = None, None, None, None
            self.launched_by_guard = False
            destroy()

    def destroy_at_exit(self) -> None:
        # Only the process that launched destroys: a forked child must not close
        # connections that belong to its parent.
        if (
            self.instance is not None
            and self.pid == os.getpid()
            and self.instance is instance_token()
        ):
            self.destroy()
            logger.info("DBOS destroyed at exit")


_process = _ProcessLaunch()
os.register_at_fork(after_in_child=_process.after_fork_in_child)


def ensure_launched(
    configure: Callable[[], None] | None = None,
    *,
    owner: object | None = None,
    config: Mapping[str, Any] | None = None,
) -> bool:
    """Launch DBOS in this process unless it runs already (see ``_ProcessLaunch``)."""
    return _process.ensure_launched(configure, owner=owner, config=config)


def launched_by_adapter() -> bool:
    """True while the running DBOS was launched through ``ensure_launched`` here."""
    return _process.launched_here()


def destroy_launched() -> None:
    """Destroy DBOS and forget what ``ensure_launched`` knew."""
    _process.destroy()


def launched_in_pid() -> int | None:
    """The process in which ``ensure_launched`` launched or adopted the running DBOS."""
    return _process.pid


def run_worker(
    launch_worker: Callable[[], None],
    stop_worker: Callable[[], None],
    say: Callable[[str], None],
) -> None:
    """A ``worker`` command: launch (recovery, queues, schedules) without a web server and
    run until SIGINT or SIGTERM, then stop. Call it on the main thread."""
    from .dbos import DBOS

    stop = threading.Event()

    def request_stop(_signum: int, _frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        launch_worker()
        say(
            f"DBOS worker running: executor {DBOS.executor_id}, application version "
            f"{DBOS.application_version}. Stop with Ctrl-C or SIGTERM."
        )
        while not stop.is_set():
            stop.wait(60)
        say("DBOS worker stopping")
    finally:
        try:
            stop_worker()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    say("DBOS worker stopped")


# -- adapter settings -----------------------------------------------------------------------

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def setting_bool(value: Any, name: str) -> bool:
    """A boolean adapter setting, also when it came from the environment as text
    (``FLASK_DBOS_LAUNCH_ON_FIRST_REQUEST=False`` is the string "False", not truthy)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise DBOSConfigurationError(f"{name} must be true or false, got {value!r}")


# -- who made the request -------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """The authenticated user of a request, their roles and the role they act in."""

    user: str | None = None
    roles: list[str] | None = None
    assumed_role: str | None = None


ANONYMOUS = Identity()


def _role_names(roles: Any, user: str) -> list[str] | None:
    if roles is None:
        return None
    if isinstance(roles, (str, bytes)) or not isinstance(roles, Iterable):
        raise TypeError(f"The roles of user {user!r} must be a list of role names, got {roles!r}")
    # Role objects (Flask-Security style) carry a name; plain strings pass through.
    return [r if isinstance(r, str) else str(getattr(r, "name", r)) for r in roles]


def normalize_identity(value: Any) -> Identity:
    """What a user resolver may return: None or "" (anonymous), a user name, an
    ``Identity``, or a tuple ``(user,)``, ``(user, roles)``, ``(user, roles, assumed_role)``."""
    if value is None:
        return ANONYMOUS
    if isinstance(value, Identity):
        return value
    if isinstance(value, str):
        return Identity(value) if value else ANONYMOUS
    if isinstance(value, tuple) and 1 <= len(value) <= 3:
        user = value[0]
        if user is None or user == "":
            return ANONYMOUS
        name = str(user)
        roles = _role_names(value[1] if len(value) > 1 else None, name)
        role = value[2] if len(value) > 2 else None
        return Identity(name, roles, None if role is None else str(role))
    raise TypeError(
        "A DBOS user resolver must return None, a user name, (user, roles) or "
        f"(user, roles, assumed_role); got {value!r}"
    )


# -- the request scope ---------------------------------------------------------------------


def decode_header(value: bytes | str, what: str) -> str:
    """A header value as the client meant it: UTF-8.

    ASGI gives bytes; WSGI servers give text decoded as latin-1 (PEP 3333), which we undo.
    Text that is not latin-1 already holds the client's characters.
    """
    if isinstance(value, str):
        try:
            raw = value.encode("latin-1")
        except UnicodeEncodeError:
            return value
    else:
        raw = value
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DBOSInvalidIDError(what, "it is not valid UTF-8") from None


def read_idempotency_key(raw: bytes | str | None) -> str | None:
    """The key of a request (surrounding whitespace removed), validated like any workflow
    ID; None when the header is absent. Raises ``DBOSInvalidIDError`` (a 400) when it is
    empty, too long, not UTF-8 or holds control characters."""
    if raw is None:
        return None
    key = decode_header(raw, "idempotency key").strip()
    return check_id(key, "idempotency key")


def read_request_id(raw: bytes | str | None) -> str:
    """The request id header, validated; a fresh id when it is absent or blank."""
    if raw is None:
        return uuid.uuid4().hex
    request_id = decode_header(raw, "request id").strip()
    return check_id(request_id, "request id") if request_id else uuid.uuid4().hex


def open_request(
    *,
    idempotency_key: bytes | str | None,
    request_id: bytes | str | None,
    identity: Callable[[], Any] | None = None,
) -> RequestContext:
    """The DBOS context of one request, from its raw header values.

    ``identity`` is called at most once, when the request starts its first workflow,
    and may return anything ``normalize_identity`` accepts. Raises
    ``DBOSInvalidIDError`` for a malformed key or request id: answer it with
    ``error_response`` (400) before running the view.
    """
    request = ctx.RequestContext(
        idempotency_key=read_idempotency_key(idempotency_key),
        request_id=read_request_id(request_id),
    )

    def resolve() -> tuple[str | None, list[str] | None]:
        who = normalize_identity(identity()) if identity is not None else ANONYMOUS
        # The core reads assumed_role right after resolving the user.
        request.assumed_role = who.assumed_role
        return who.user, who.roles

    request.user_resolver = resolve
    return request


def enter_request_scope(request: RequestContext) -> Any:
    """Make ``request`` the current request; returns a token for ``exit_request_scope``.

    The scope is a context variable, so it never reaches another request or work
    started after the response."""
    return ctx.request_context.set(request)


def exit_request_scope(token: Any) -> None:
    ctx.request_context.reset(token)


@contextmanager
def request_scope(
    *,
    idempotency_key: bytes | str | None = None,
    request_id: bytes | str | None = None,
    identity: Callable[[], Any] | None = None,
) -> Iterator[RequestContext]:
    """``open_request`` and enter it for the block."""
    request = open_request(
        idempotency_key=idempotency_key, request_id=request_id, identity=identity
    )
    token = enter_request_scope(request)
    try:
        yield request
    finally:
        close_idempotency_key(request)
        exit_request_scope(token)


def close_idempotency_key(request: RequestContext) -> None:
    """The response is sent: work started from now on (background tasks) gets its own ID."""
    request.key_used = True


def current_request() -> RequestContext | None:
    return ctx.request_context.get()


# -- errors as HTTP responses ---------------------------------------------------------------

_GENERIC_5XX = {
    503: "The service is temporarily unavailable; try again later",
}


def error_response(exc: DBOSException) -> tuple[int, dict[str, Any]]:
    """The HTTP status and JSON body for a DBOS error: ``{"error": code, "message": ...}``.

    4xx errors describe the caller's own mistake and say so (with the ``workflow_id``
    the caller used, when there is one). 5xx errors keep their stable code but not
    their details, which may name hosts, users or databases: those are logged.
    """
    status = exc.http_status if 400 <= exc.http_status <= 599 else 500
    if status >= 500:
        logger.error("DBOS error answered as HTTP %d: %s: %s", status, exc.code, exc.message)
        message = _GENERIC_5XX.get(status, "Internal server error; the details are in the log")
        return status, {"error": exc.code, "message": message}
    body: dict[str, Any] = {"error": exc.code, "message": exc.message}
    workflow_id = getattr(exc, "workflow_id", None)
    if workflow_id is not None:
        body["workflow_id"] = workflow_id
    return status, body


# -- what else adapters plug in ---------------------------------------------------------------


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


# -- operator views (admin pages, CLI commands) ----------------------------------------------


def _views_runtime(deserialize: bool | None) -> tuple[Any, Any]:
    """The runtime, and the serializer that decodes values for display (None: nothing is
    deserialized; ``deserialize=None`` follows ``admin_deserialize_values``)."""
    rt = global_state.get_runtime()
    decode = rt.config.admin_deserialize_values if deserialize is None else deserialize
    return rt, rt.serializer if decode else None


def workflow_views(*, deserialize: bool | None = False, **filters: Any) -> list[dict[str, Any]]:
    """Workflows as operator tools show them (``DBOS.list_workflows`` filters), inputs and
    outputs displayed without unpickling unless ``deserialize`` (the documented opt-in)."""
    from .operator_views import list_workflow_views
    from .storage import management as ops

    rt, serializer = _views_runtime(deserialize)
    return list_workflow_views(rt.sysdb, ops.build_filters(**filters), serializer)


def workflow_view(workflow_id: str, *, deserialize: bool | None = False) -> dict[str, Any]:
    from .operator_views import get_workflow_view

    rt, serializer = _views_runtime(deserialize)
    return get_workflow_view(rt.sysdb, workflow_id, serializer)


def step_views(workflow_id: str, *, deserialize: bool | None = False) -> list[dict[str, Any]]:
    from .operator_views import list_step_views

    rt, serializer = _views_runtime(deserialize)
    return list_step_views(rt.sysdb, workflow_id, serializer)


def metrics_exposition() -> tuple[bytes, str]:
    """The Prometheus text of the running DBOS and its content type, for the adapters'
    metrics views (each mounts it behind its own framework's authentication)."""
    rt = global_state.get_runtime()
    exposition = rt.telemetry.metrics_exposition()
    if exposition is None:
        from .error import DBOSMetricsDisabledError

        raise DBOSMetricsDisabledError("Metrics are off: set enable_metrics in DBOSConfig")
    return exposition
