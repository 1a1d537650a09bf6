"""Transactions on the application's own SQLAlchemy ``Engine`` and session factory.

``DBOSConfig["application_database_engine"]`` (and/or ``application_session_factory``,
a ``sessionmaker`` or a ``Session`` subclass such as SQLModel's) make ``@DBOS.transaction``
run on the application's pool instead of a second one built from a URL. Inside the
transaction ``DBOS.sql_session`` is a session of that factory, bound to the connection
that also writes the checkpoint row, so both commit together.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from .backend import Checkpoint, RecordedOutput, TransactionBackend
from .checkpoint_sql import insert_checkpoint, schema_options
from .errors import is_serialization_failure
from .sa_transaction import (
    SESSION_OPTIONS,
    abort_transaction,
    commit_transaction,
    create_checkpoint_table,
    ensure_active,
    open_transaction,
    read_output,
)
from .sqlalchemy_backend import transaction_outputs

T = TypeVar("T")

SessionFactory = sessionmaker[Any] | type[Session]


def session_maker(factory: SessionFactory | None) -> Callable[[Connection], Session]:
    """Sessions of the application's factory, bound to the transaction's connection."""
    if factory is None:
        return lambda conn: Session(bind=conn, expire_on_commit=False, **SESSION_OPTIONS)
    return lambda conn: factory(bind=conn, **SESSION_OPTIONS)


class EngineTransactionBackend(TransactionBackend):
    """Runs each transaction on a connection of ``engine`` (the application's pool)."""

    def __init__(
        self,
        engine: Engine,
        session_factory: SessionFactory | None = None,
        *,
        schema: str = "dbos",
    ) -> None:
        self.engine = engine
        self._make_session = session_maker(session_factory)
        self._schema = schema
        self._options = schema_options(engine.dialect.name, schema)

    def start(self) -> None:
        with self.engine.connect() as conn:
            create_checkpoint_table(conn, transaction_outputs, self._schema)

    def stop(self) -> None:
        pass  # the engine belongs to the application, which disposes of it

    def recorded_output(self, workflow_id: str, function_id: int) -> RecordedOutput | None:
        with self.engine.connect() as conn:
            return read_output(conn, transaction_outputs, workflow_id, function_id, self._options)

    def run(
        self, body: Callable[[Any], T], checkpoint: Checkpoint | None, isolation_level: str
    ) -> T:
        with self.engine.connect() as conn:
            opened = open_transaction(conn, isolation_level)
            try:
                session = self._make_session(conn)
                try:
                    result = body(session)
                    ensure_active(opened)
                    session.flush()
                finally:
                    session.close()
                insert = (
                    None
                    if checkpoint is None
                    else insert_checkpoint(transaction_outputs, checkpoint, result)
                )
                commit_transaction(conn, opened, insert, self._options)
            except BaseException:
                abort_transaction(conn, opened)
                raise
            return result

    def is_retryable(self, exc: BaseException) -> bool:
        return is_serialization_failure(exc)
