"""Running a ``@DBOS.transaction``: replay it, or run it exactly once and checkpoint it.

Inside a workflow a transaction is a step whose authoritative checkpoint is the
``transaction_outputs`` row written in the user's own database transaction. After
that commit the step is also recorded in the system database (so replay and
``list_workflow_steps`` see it); if the process dies between the two, replay finds
the application-database row and records it without running the function again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
import threading
import time
import weakref
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from ..error import DBOSException
from ..observability import signals
from ..runtime import context as ctx
from ..runtime.effects import Blocking, Protocol, UserCall, Wait
from ..runtime.notifier import Waiter
from ..runtime.runtime import Runtime, Service, service_factories
from ..runtime.steps import begin_step, current_runtime, record_outcome, replay
from ..serialization import deserialize_value, serialize_value
from .backend import Checkpoint, TransactionBackend

if TYPE_CHECKING:
    from .async_backend import AsyncTransactionBackend

# The session of the transaction running in this context (``DBOS.sql_session``).
current_session: ContextVar[Any] = ContextVar("dbos_sql_session", default=None)
# True while that transaction is an async one (its session is an AsyncSession).
_in_async_transaction: ContextVar[bool] = ContextVar("dbos_async_transaction", default=False)

BackendFactory = Callable[[Runtime], TransactionBackend]
_factory: BackendFactory | None = None
_backends: weakref.WeakKeyDictionary[Runtime, TransactionBackend] = weakref.WeakKeyDictionary()
# Each async backend with a future that is done once it has connected (and how).
_async_backends: weakref.WeakKeyDictionary[
    Runtime, tuple[AsyncTransactionBackend, concurrent.futures.Future[None]]
] = weakref.WeakKeyDictionary()
_lock = threading.Lock()

MAX_RETRY_DELAY = 1.0


def set_backend_factory(factory: BackendFactory | None) -> None:
    """Choose how the application database is reached (adapters use this); None resets."""
    global _factory
    _factory = factory


def _default_factory(rt: Runtime) -> TransactionBackend:
    from .sqlalchemy_backend import SQLAlchemyTransactionBackend

    config = rt.config
    if config.application_database_engine is not None:
        # The application's own engine (and session factory): one pool, its sessions.
        from .engine_backend import EngineTransactionBackend

        return EngineTransactionBackend(
            config.application_database_engine,
            config.application_session_factory,
            schema=config.dbos_system_schema,
        )
    # As the seeds say, the application database defaults like the system database.
    url = config.application_database_url or config.system_database_url
    return SQLAlchemyTransactionBackend(
        url,
        schema=config.dbos_system_schema,
        engine_kwargs=config.db_engine_kwargs,
        connect_timeout=config.database_connect_timeout,
    )


def backend_for(rt: Runtime) -> TransactionBackend:
    """The runtime's backend, connected on first use (most applications never need one)."""
    with _lock:
        backend = _backends.get(rt)
        if backend is None:
            backend = (_factory or _default_factory)(rt)
            backend.start()
            _backends[rt] = backend
        return backend


def _async_factory(rt: Runtime) -> AsyncTransactionBackend:
    config = rt.config
    if config.application_async_engine is None:
        raise DBOSException(NO_ASYNC_ENGINE)
    from .async_backend import AsyncEngineTransactionBackend

    return AsyncEngineTransactionBackend(
        config.application_async_engine,
        config.application_async_session_factory,
        schema=config.dbos_system_schema,
    )


NO_ASYNC_ENGINE = (
    "An async def function decorated with @DBOS.transaction needs an async database engine: "
    "set DBOSConfig['application_async_engine'] (for example create_async_engine("
    "'sqlite+aiosqlite:///app.sqlite') or 'postgresql+psycopg://...') or "
    "DBOSConfig['application_async_session_factory'] (an async_sessionmaker). Without one, "
    "make the transaction a plain def and call it with asyncio.to_thread from async code"
)


async def async_backend_for(rt: Runtime) -> AsyncTransactionBackend:
    """The runtime's async backend, its checkpoint table created on first use.

    Several event loops may ask at once (the caller's, DBOS's own). Only the first one
    connects: SQLAlchemy guards an engine's first connection with an asyncio lock, whose
    waiters in another loop would never be woken. The others wait on a thread-safe future.
    """
    with _lock:
        entry = _async_backends.get(rt)
        first = entry is None
        if entry is None:
            entry = (_async_factory(rt), concurrent.futures.Future())
            _async_backends[rt] = entry
    backend, started = entry
    if not first:
        await asyncio.wrap_future(started)
        return backend
    try:
        await backend.start()
    except BaseException as exc:
        with _lock:
            if _async_backends.get(rt) is entry:
                del _async_backends[rt]  # the next call tries again
        started.set_exception(exc)
        raise
    started.set_result(None)
    return backend


class _BackendLifecycle:
    """Connects the async backend at launch, closes the backends' connections at destroy."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = weakref.ref(rt)

    def start(self) -> None:
        rt = self._rt()
        if rt is None or rt.config.application_async_engine is None:
            return
        # The engine's first connection, on DBOS's loop, before DBOS.launch() returns:
        # later callers on any loop then find it connected (see async_backend_for).
        try:
            rt.run_coroutine(async_backend_for(rt)).result(rt.config.database_connect_timeout)
        except Exception as exc:
            rt.logger.warning(
                "The application's async engine is not reachable yet (%s); async "
                "transactions will connect when first called",
                exc,
            )

    def stop(self) -> None:
        rt = self._rt()
        if rt is None:
            return
        with _lock:
            backend = _backends.pop(rt, None)
            # An async backend holds nothing of its own: its engine is the application's.
            _async_backends.pop(rt, None)
        if backend is not None:
            backend.stop()


def _lifecycle_factory(rt: Runtime) -> Service:
    return _BackendLifecycle(rt)


service_factories.append(_lifecycle_factory)


def transaction_protocol(
    name: str,
    isolation_level: str,
    func: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    is_async: bool = False,
) -> Protocol[Any]:
    """One protocol for sync and async transactions: only how the backend is called
    differs (a blocking call, or an awaited one; see ``_call``)."""
    if ctx.in_transaction.get():
        if _in_async_transaction.get() != is_async:
            raise DBOSException(
                f"Cannot call the {'async' if is_async else 'sync'} transaction {name!r} from "
                f"inside {'a sync' if is_async else 'an async'} transaction: a transaction "
                "can only join another of its own kind (they use different sessions)"
            )
        # Called from another transaction: it is simply part of that transaction.
        return (yield UserCall(func, args, kwargs))
    rt = current_runtime()
    if is_async:
        backend: Any = yield UserCall(async_backend_for, (rt,), {})
    else:
        backend = yield Blocking(lambda: backend_for(rt))
    state = ctx.current_workflow.get()
    if state is None or ctx.current_step.get() is not None:
        body = _body(name, None, func, args, kwargs, is_async)
        return (yield from _run_with_retries(backend, is_async, body, None, isolation_level, None))
    function_id, record = begin_step(rt, state, name)
    if record is not None:
        return replay(rt, record)
    started = int(time.time() * 1000)
    recorded = yield _call(is_async, backend.recorded_output, state.workflow_id, function_id)
    if recorded is not None:
        # Committed before a crash, not yet in the system database: never run it again.
        result = deserialize_value(rt.serializer, recorded.output, f"output of {name!r}")
        return (yield from record_outcome(rt, state, function_id, name, started, result, None))
    checkpoint = Checkpoint(
        state.workflow_id,
        function_id,
        lambda value: serialize_value(rt.serializer, value, f"output of transaction {name!r}"),
    )
    body = _body(name, function_id, func, args, kwargs, is_async)
    attempts = _run_with_retries(backend, is_async, body, checkpoint, isolation_level, state)
    try:
        result = yield from rt.telemetry.step(state, function_id, name, attempts, "transaction")
    except Exception as exc:
        # A concurrent execution of the same workflow may have committed this transaction
        # first (our checkpoint insert then fails on its unique key): its output wins.
        try:
            recorded = yield _call(
                is_async, backend.recorded_output, state.workflow_id, function_id
            )
        except Exception:
            recorded = None  # the original error is the one to report
        if recorded is not None:
            result = deserialize_value(rt.serializer, recorded.output, f"output of {name!r}")
            return (yield from record_outcome(rt, state, function_id, name, started, result, None))
        # Rolled back: nothing of it exists in the application database. Record the error.
        return (yield from record_outcome(rt, state, function_id, name, started, None, exc))
    return (yield from record_outcome(rt, state, function_id, name, started, result, None))


def _call(is_async: bool, method: Callable[..., Any], *args: Any) -> Blocking | UserCall:
    """A backend call as an effect: awaited for an async backend (the async driver awaits
    UserCall results), run in place for a sync one."""
    if is_async:
        return UserCall(method, args, {})
    return Blocking(lambda: method(*args))


def _body(
    name: str,
    function_id: int | None,
    func: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    is_async: bool,
) -> Callable[[Any], Any]:
    """``body(session)`` for the backend: the user's function with ``DBOS.sql_session`` set."""

    def enter(session: Any) -> list[tuple[ContextVar[Any], Any]]:
        return [
            (current_session, current_session.set(session)),
            (ctx.in_transaction, ctx.in_transaction.set(True)),
            (_in_async_transaction, _in_async_transaction.set(is_async)),
            (ctx.current_step, ctx.current_step.set(ctx.StepState(name, function_id))),
        ]

    def leave(tokens: list[tuple[ContextVar[Any], Any]]) -> None:
        for var, token in reversed(tokens):
            var.reset(token)

    if is_async:

        async def async_body(session: Any) -> Any:
            tokens = enter(session)
            try:
                return await func(*args, **kwargs)
            finally:
                leave(tokens)

        return async_body

    def body(session: Any) -> Any:
        tokens = enter(session)
        try:
            return func(*args, **kwargs)
        finally:
            leave(tokens)

    return body


def _run_with_retries(
    backend: Any,
    is_async: bool,
    body: Callable[[Any], Any],
    checkpoint: Checkpoint | None,
    isolation_level: str,
    state: ctx.WorkflowState | None,
) -> Protocol[Any]:
    delay = 0.005
    while True:
        try:
            return (yield _call(is_async, backend.run, body, checkpoint, isolation_level))
        except Exception as exc:
            if not backend.is_retryable(exc):
                raise
            signals.database_retry("application")
        if state is not None:
            state.check_cancelled()
        # Jitter keeps two conflicting transactions from colliding again in lockstep.
        yield Wait(Waiter(()), delay * (0.5 + random.random()))
        delay = min(delay * 2, MAX_RETRY_DELAY)


class DBOSNoSessionError(DBOSException, AttributeError):
    """``DBOS.sql_session`` read outside a transaction (an AttributeError too, so that
    ``hasattr`` and introspection keep working)."""

    code = "NO_SQL_SESSION"


def session_or_error() -> Any:
    session = current_session.get()
    if session is None:
        raise DBOSNoSessionError(
            "DBOS.sql_session is only available inside a function decorated with "
            "@DBOS.transaction()"
        )
    return session
