"""Running a ``@DBOS.transaction``: replay it, or run it exactly once and checkpoint it.

Inside a workflow a transaction is a step whose authoritative checkpoint is the
``transaction_outputs`` row written in the user's own database transaction. After
that commit the step is also recorded in the system database (so replay and
``list_workflow_steps`` see it); if the process dies between the two, replay finds
the application-database row and records it without running the function again.
"""

from __future__ import annotations

import random
import threading
import time
import weakref
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from ..error import DBOSException
from ..observability import signals
from ..runtime import context as ctx
from ..runtime.effects import Blocking, Protocol
from ..runtime.runtime import Runtime, Service, service_factories
from ..runtime.steps import begin_step, current_runtime, record_outcome, replay
from ..serialization import deserialize_value, serialize_value
from .backend import Checkpoint, TransactionBackend

# The session of the transaction running in this context (``DBOS.sql_session``).
current_session: ContextVar[Any] = ContextVar("dbos_sql_session", default=None)

BackendFactory = Callable[[Runtime], TransactionBackend]
_factory: BackendFactory | None = None
_backends: weakref.WeakKeyDictionary[Runtime, TransactionBackend] = weakref.WeakKeyDictionary()
_lock = threading.Lock()

MAX_RETRY_DELAY = 1.0


def set_backend_factory(factory: BackendFactory | None) -> None:
    """Choose how the application database is reached (adapters use this); None resets."""
    global _factory
    _factory = factory


def _default_factory(rt: Runtime) -> TransactionBackend:
    from .sqlalchemy_backend import SQLAlchemyTransactionBackend

    config = rt.config
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


class _BackendCloser:
    """Closes the backend's connections when the runtime is destroyed."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = weakref.ref(rt)

    def start(self) -> None:
        pass

    def stop(self) -> None:
        rt = self._rt()
        if rt is None:
            return
        with _lock:
            backend = _backends.pop(rt, None)
        if backend is not None:
            backend.stop()


def _closer_factory(rt: Runtime) -> Service:
    return _BackendCloser(rt)


service_factories.append(_closer_factory)


def transaction_protocol(
    name: str,
    isolation_level: str,
    func: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Protocol[Any]:
    if ctx.in_transaction.get():
        # Called from another transaction: it is simply part of that transaction.
        return func(*args, **kwargs)
    rt = current_runtime()
    backend = yield Blocking(lambda: backend_for(rt))
    state = ctx.current_workflow.get()
    if state is None or ctx.current_step.get() is not None:
        return (
            yield Blocking(
                lambda: _run_with_retries(
                    backend, name, isolation_level, None, None, func, args, kwargs
                )
            )
        )
    function_id, record = begin_step(rt, state, name)
    if record is not None:
        return replay(rt, record)
    started = int(time.time() * 1000)
    recorded = yield Blocking(lambda: backend.recorded_output(state.workflow_id, function_id))
    if recorded is not None:
        # Committed before a crash, not yet in the system database: never run it again.
        result = deserialize_value(rt.serializer, recorded.output, f"output of {name!r}")
        return (yield from record_outcome(rt, state, function_id, name, started, result, None))
    checkpoint = Checkpoint(
        state.workflow_id,
        function_id,
        lambda value: serialize_value(rt.serializer, value, f"output of transaction {name!r}"),
    )
    run = Blocking(
        lambda: _run_with_retries(
            backend, name, isolation_level, checkpoint, state, func, args, kwargs
        )
    )
    try:
        result = yield from rt.telemetry.step(
            state, function_id, name, _perform(run), "transaction"
        )
    except Exception as exc:
        # A concurrent execution of the same workflow may have committed this transaction
        # first (our checkpoint insert then fails on its unique key): its output wins.
        try:
            recorded = yield Blocking(
                lambda: backend.recorded_output(state.workflow_id, function_id)
            )
        except Exception:
            recorded = None  # the original error is the one to report
        if recorded is not None:
            result = deserialize_value(rt.serializer, recorded.output, f"output of {name!r}")
            return (yield from record_outcome(rt, state, function_id, name, started, result, None))
        # Rolled back: nothing of it exists in the application database. Record the error.
        return (yield from record_outcome(rt, state, function_id, name, started, None, exc))
    return (yield from record_outcome(rt, state, function_id, name, started, result, None))


def _perform(effect: Blocking) -> Protocol[Any]:
    return (yield effect)


def _run_with_retries(
    backend: TransactionBackend,
    name: str,
    isolation_level: str,
    checkpoint: Checkpoint | None,
    state: ctx.WorkflowState | None,
    func: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    function_id = None if checkpoint is None else checkpoint.function_id

    def body(session: Any) -> Any:
        tokens = [
            (current_session, current_session.set(session)),
            (ctx.in_transaction, ctx.in_transaction.set(True)),
            (ctx.current_step, ctx.current_step.set(ctx.StepState(name, function_id))),
        ]
        try:
            return func(*args, **kwargs)
        finally:
            for var, token in reversed(tokens):
                var.reset(token)

    delay = 0.005
    while True:
        try:
            return backend.run(body, checkpoint, isolation_level)
        except Exception as exc:
            if not backend.is_retryable(exc):
                raise
            signals.database_retry("application")
        if state is not None:
            state.check_cancelled()
        # Jitter keeps two conflicting transactions from colliding again in lockstep.
        time.sleep(delay * (0.5 + random.random()))
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
