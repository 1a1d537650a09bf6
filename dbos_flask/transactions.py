"""Flask-SQLAlchemy-backed ``@DBOS.transaction``: ``DBOSFlask(db=db)``.

The function runs in one transaction on a connection of the app's ``db`` engine (the
default bind, or the bind key chosen with ``dbos_flask.transaction(bind_key=...)``).
Inside it, ``db.session`` and ``DBOS.sql_session`` are the same session, bound to that
connection, so models written the usual way commit together with the checkpoint row
(table ``dbos_transaction_outputs``, part of ``db.metadata``: Flask-Migrate's
``flask db migrate`` generates it, ``flask dbos migrate`` or ``db.create_all()`` create it).

The rule for a request whose ``db.session`` already holds uncommitted changes: the
transaction refuses to start (``DBOSFlaskSessionError``), since those changes are on
another connection and would not commit with it. Objects the request loaded earlier
are expired after the transaction commits, so the request then reads fresh values.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar, cast

import sqlalchemy as sa
from flask import Flask, current_app, has_app_context
from sqlalchemy.engine import Connection, Engine

from dbos_core import DBOS
from dbos_core.error import DBOSConfigurationError, DBOSException
from dbos_core.integration import set_transaction_backend_factory
from dbos_core.transactions import (
    Checkpoint,
    RecordedOutput,
    TransactionBackend,
    is_serialization_failure,
)
from dbos_core.transactions.checkpoint_sql import checkpoint_columns, insert_checkpoint
from dbos_core.transactions.sa_transaction import (
    SESSION_OPTIONS,
    abort_transaction,
    commit_transaction,
    ensure_active,
    open_transaction,
    read_output,
)

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

CHECKPOINT_TABLE = "dbos_transaction_outputs"
STATE_KEY = "dbos_sqlalchemy"
# session.info key: this session flushed writes its transaction has not committed yet.
_FLUSHED = "dbos_flushed_writes"
_DEFAULT: Any = object()
# The bind key chosen by @dbos_flask.transaction(bind_key=...) for the call in progress.
_bind_key: ContextVar[Any] = ContextVar("dbos_flask_bind_key", default=_DEFAULT)
# Bind keys named by decorators, so each gets the checkpoint table in its metadata.
_used_bind_keys: set[str | None] = set()
# (db, its app's bind keys) of each DBOSFlask(db=...), so a decorator's bind key reaches
# the metadata of the dbs whose app configures that bind, and no other.
_installed: set[tuple[Any, frozenset[str]]] = set()
_lock = threading.Lock()


class DBOSFlaskSessionError(DBOSException):
    """A DBOS transaction was called while the request's ``db.session`` had uncommitted
    changes, which would not commit with it."""

    code = "FLASK_SESSION_HAS_CHANGES"


@dataclass
class FlaskSQLAlchemyState:
    """``app.extensions["dbos_sqlalchemy"]``: the db transactions run on."""

    db: Any
    bind_key: str | None


def state_of(app: Flask) -> FlaskSQLAlchemyState | None:
    state = app.extensions.get(STATE_KEY)
    return state if isinstance(state, FlaskSQLAlchemyState) else None


def checkpoint_table(db: Any, bind_key: str | None) -> sa.Table:
    """The checkpoint table in the metadata of ``bind_key`` (added on first use), so the
    app's migrations and ``db.create_all()`` create it with the app's own tables."""
    metadata = db.metadatas.get(bind_key)
    if metadata is not None and CHECKPOINT_TABLE in metadata.tables:
        return cast(sa.Table, metadata.tables[CHECKPOINT_TABLE])
    return cast(
        sa.Table,
        db.Table(CHECKPOINT_TABLE, *checkpoint_columns(CHECKPOINT_TABLE), bind_key=bind_key),
    )


def install(app: Flask, db: Any, bind_key: str | None, config: dict[str, Any] | None) -> None:
    """Route ``@DBOS.transaction`` to ``db`` for this app (called by ``init_app``).

    In one process the last app initialised with ``db=`` is the one transactions use
    (a process runs one DBOS)."""
    try:
        from flask_sqlalchemy import SQLAlchemy
    except ImportError as exc:
        raise DBOSConfigurationError(
            "DBOSFlask(db=...) needs Flask-SQLAlchemy: pip install 'dbos-suite[flask-sqlalchemy]'"
        ) from exc
    if not isinstance(db, SQLAlchemy):
        raise DBOSConfigurationError(
            f"DBOSFlask(db=...) expects a flask_sqlalchemy.SQLAlchemy object, got {db!r}"
        )
    if bind_key is not None and not isinstance(bind_key, str):
        raise DBOSConfigurationError(f"DBOSFlask(bind_key={bind_key!r}) must be a bind key")
    for key in ("application_database_url", "application_database_engine"):
        if (config or {}).get(key) is not None:
            raise DBOSConfigurationError(
                f"DBOSFlask(db=...) runs transactions on the app's Flask-SQLAlchemy db, and "
                f"DBOS_{key.upper()} names another application database: give one of them"
            )
    binds = frozenset(app.config.get("SQLALCHEMY_BINDS") or {})
    with _lock:
        _installed.add((db, binds))
        _track_flushes(db.session.session_factory.class_)
        for used in _bind_keys_of(bind_key, binds):
            checkpoint_table(db, used)
    app.extensions[STATE_KEY] = FlaskSQLAlchemyState(db, bind_key)
    set_transaction_backend_factory(lambda rt: FlaskSQLAlchemyBackend(app, db, bind_key))


_tracked_classes: set[type] = set()


def _track_flushes(session_class: type) -> None:
    """Remember in ``session.info`` that a session flushed writes not yet committed
    (they hold locks on another connection than the transaction's)."""
    if session_class in _tracked_classes:
        return
    _tracked_classes.add(session_class)

    def flushed(session: Any, _context: Any) -> None:
        session.info[_FLUSHED] = True

    def ended(session: Any, transaction: Any) -> None:
        if transaction.parent is None:
            session.info.pop(_FLUSHED, None)

    sa.event.listen(session_class, "after_flush", flushed)
    sa.event.listen(session_class, "after_transaction_end", ended)


def _bind_keys_of(default: str | None, binds: frozenset[str]) -> list[str | None]:
    """The binds transactions of an app use: its default one and every bind named by a
    ``dbos_flask.transaction(bind_key=...)`` that the app configures."""
    keys = {default, *(key for key in _used_bind_keys if key is None or key in binds)}
    return sorted(keys, key=lambda k: "" if k is None else k)


def create_checkpoint_tables(app: Flask) -> list[str | None]:
    """Create the checkpoint table in every bind transactions use (``flask dbos migrate``);
    returns those bind keys. Needs an app context."""
    state = state_of(app)
    if state is None:
        return []
    keys = _bind_keys_of(state.bind_key, frozenset(app.config.get("SQLALCHEMY_BINDS") or {}))
    for key in keys:
        checkpoint_table(state.db, key).create(state.db.engines[key], checkfirst=True)
    return keys


_session_classes: dict[type, type] = {}


def _transaction_session_class(base: type) -> type:
    """A subclass of the app's session class whose every statement goes to the
    transaction's connection; a model of another bind is refused, not written elsewhere."""
    with _lock:
        cls = _session_classes.get(base)
        if cls is not None:
            return cls

        class DBOSTransactionSession(base):  # type: ignore[misc]
            dbos_connection: Connection
            dbos_default_engine: Engine | None

            def get_bind(
                self, mapper: Any = None, clause: Any = None, bind: Any = None, **kw: Any
            ) -> Any:
                if bind is not None:
                    return bind
                conn = self.dbos_connection
                resolved = super().get_bind(mapper=mapper, clause=clause, **kw)
                if resolved is conn or resolved is conn.engine:
                    return conn
                if mapper is None and resolved is self.dbos_default_engine:
                    return conn  # SQL that names no model of another bind
                raise DBOSException(
                    f"{mapper or clause} belongs to another database than this DBOS "
                    "transaction, so its writes could not commit with the checkpoint: use "
                    "@dbos_flask.transaction(bind_key=...) for that bind"
                )

        _session_classes[base] = DBOSTransactionSession
        return DBOSTransactionSession


def _refuse_pending(session: Any) -> None:
    if session is None:
        return
    if session.new or session.dirty or session.deleted or session.info.get(_FLUSHED):
        raise DBOSFlaskSessionError(
            "db.session has uncommitted changes in this context (added, changed or deleted "
            "objects, or flushed writes). A DBOS transaction runs on its own connection and "
            "commits only its own writes with its checkpoint, so these would not be part of "
            "it: commit them first (db.session.commit()), roll them back, or make them "
            "inside the transaction"
        )


class FlaskSQLAlchemyBackend(TransactionBackend):
    def __init__(self, app: Flask, db: Any, default_bind_key: str | None) -> None:
        self.app = app
        self.db = db
        self.default_bind_key = default_bind_key
        self._checked: set[tuple[int, str | None]] = set()

    def bind_key(self) -> str | None:
        key = _bind_key.get()
        return self.default_bind_key if key is _DEFAULT else cast(str | None, key)

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass  # the engines belong to Flask-SQLAlchemy

    @contextmanager
    def _app_context(self) -> Iterator[None]:
        """The app's context: the caller's when it is this app's (its ``g`` stays
        visible), else a new one (DBOS's own threads have none)."""
        if has_app_context() and current_app._get_current_object() is self.app:  # type: ignore[attr-defined]
            yield
        else:
            with self.app.app_context():
                yield

    def _engine(self, bind_key: str | None) -> Engine:
        engines = self.db.engines
        if bind_key not in engines:
            raise DBOSException(
                f"Flask-SQLAlchemy has no bind {bind_key!r} (SQLALCHEMY_BINDS): a DBOS "
                "transaction cannot run there"
            )
        return cast(Engine, engines[bind_key])

    def _check_table(self, engine: Engine, table: sa.Table, bind_key: str | None) -> None:
        if (id(engine), bind_key) in self._checked:
            return
        if not sa.inspect(engine).has_table(table.name):
            where = "" if bind_key is None else f" of bind {bind_key!r}"
            raise DBOSException(
                f"The DBOS checkpoint table {table.name!r} does not exist in the database"
                f"{where}: create it with your migrations (Flask-Migrate: flask db migrate, "
                "then flask db upgrade; the table is in db.metadata), with "
                "`flask dbos migrate`, or with db.create_all()"
            )
        self._checked.add((id(engine), bind_key))

    def recorded_output(self, workflow_id: str, function_id: int) -> RecordedOutput | None:
        bind_key = self.bind_key()
        with self._app_context():
            engine = self._engine(bind_key)
            table = checkpoint_table(self.db, bind_key)
            self._check_table(engine, table, bind_key)
            with engine.connect() as conn:
                return read_output(conn, table, workflow_id, function_id, {})

    def run(
        self, body: Callable[[Any], T], checkpoint: Checkpoint | None, isolation_level: str
    ) -> T:
        bind_key = self.bind_key()
        with self._app_context():
            registry = self.db.session.registry
            outer = registry() if registry.has() else None
            _refuse_pending(outer)
            engine = self._engine(bind_key)
            table = checkpoint_table(self.db, bind_key)
            if checkpoint is not None:
                self._check_table(engine, table, bind_key)
            result = self._run_on(engine, table, registry, outer, body, checkpoint, isolation_level)
            if outer is not None:
                # The request's objects may be stale now: reload them on next access.
                outer.expire_all()
            return result

    def _run_on(
        self,
        engine: Engine,
        table: sa.Table,
        registry: Any,
        outer: Any,
        body: Callable[[Any], T],
        checkpoint: Checkpoint | None,
        isolation_level: str,
    ) -> T:
        factory = self.db.session.session_factory
        session_class = _transaction_session_class(factory.class_)
        with engine.connect() as conn:
            opened = open_transaction(conn, isolation_level)
            try:
                session = session_class(**{**factory.kw, "bind": conn, **SESSION_OPTIONS})
                session.dbos_connection = conn
                session.dbos_default_engine = self.db.engines.get(None)
                registry.set(session)  # db.session is this session until we return
                try:
                    result = body(session)
                    ensure_active(opened)
                    session.flush()
                finally:
                    session.close()
                    if outer is not None:
                        registry.set(outer)
                    else:
                        registry.clear()
                insert = (
                    None if checkpoint is None else insert_checkpoint(table, checkpoint, result)
                )
                commit_transaction(conn, opened, insert, {})
            except BaseException:
                abort_transaction(conn, opened)
                raise
            return result

    def is_retryable(self, exc: BaseException) -> bool:
        return is_serialization_failure(exc)


def transaction(
    bind_key: Any = _DEFAULT,
    isolation_level: str = "SERIALIZABLE",
    *,
    name: str | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """``@DBOS.transaction`` on the Flask-SQLAlchemy bind ``bind_key`` (``None`` is the
    default bind; without the argument, the bind given to ``DBOSFlask(db=..., bind_key=)``).
    """
    if bind_key is not _DEFAULT and bind_key is not None and not isinstance(bind_key, str):
        raise DBOSException(f"dbos_flask.transaction(bind_key={bind_key!r}): give a bind key")

    def decorator(func: Callable[P, R]) -> Callable[P, R]:
        inner: Any = DBOS.transaction(isolation_level, name=name)(func)
        if bind_key is _DEFAULT:
            return cast(Callable[P, R], inner)
        with _lock:
            _used_bind_keys.add(bind_key)
            for db, binds in _installed:
                if bind_key is None or bind_key in binds:
                    checkpoint_table(db, bind_key)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            token = _bind_key.set(bind_key)
            try:
                return inner(*args, **kwargs)
            finally:
                _bind_key.reset(token)

        wrapper.__dbos_registration__ = inner.__dbos_registration__  # type: ignore[attr-defined]
        return cast(Callable[P, R], wrapper)

    return decorator
