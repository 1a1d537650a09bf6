"""Async transactions: ``@DBOS.transaction()`` on an ``async def`` function.

They run on the application's ``AsyncEngine`` (``DBOSConfig["application_async_engine"]``
or the engine of ``application_async_session_factory``): aiosqlite on SQLite, psycopg's
async driver on PostgreSQL. Inside, ``DBOS.sql_session`` is an ``AsyncSession`` of the
application's factory; the checkpoint row is written on the same connection and commits
with the function's writes, exactly as in the sync backends, whose transaction rules
(``sa_transaction``) are reused here through ``AsyncConnection.run_sync``.

Event loops: DBOS runs recovered and queued async workflows on its own event loop, the
application runs requests on its loop, and both check connections out of the same pool.
The drivers above do not tie a connection to a loop. SQLAlchemy's async engine has two
asyncio primitives that do: the lock around the engine's very first connection (DBOS
makes that connection at launch, on its loop, before anyone else can race it; see
``protocol.async_backend_for``), and the pool's wait queue, bound to the first loop that
had to wait for a free connection: size the pool for the peak of both loops (or use
``NullPool``). asyncpg ties each connection to the loop
that opened it, so it is accepted only with ``NullPool`` (checked in ``config.py``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from .backend import Checkpoint, RecordedOutput
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

AsyncSessionFactory = async_sessionmaker[Any] | type[AsyncSession]


class AsyncTransactionBackend(ABC):
    """The async counterpart of ``TransactionBackend``, with the same guarantee: the
    function's writes and the checkpoint row commit in one database transaction."""

    @abstractmethod
    async def start(self) -> None:
        """Create the checkpoint table if it does not exist."""

    @abstractmethod
    async def recorded_output(self, workflow_id: str, function_id: int) -> RecordedOutput | None:
        """The checkpoint of a committed transaction, or None."""

    @abstractmethod
    async def run(
        self,
        body: Callable[[Any], Awaitable[T]],
        checkpoint: Checkpoint | None,
        isolation_level: str,
    ) -> T:
        """Open a transaction, await ``body(session)``, write the checkpoint and commit."""

    @abstractmethod
    def is_retryable(self, exc: BaseException) -> bool:
        """True for errors that mean "run the whole transaction again"."""


def async_session_maker(factory: AsyncSessionFactory | None) -> Callable[[AsyncConnection], Any]:
    if factory is None:
        return lambda conn: AsyncSession(bind=conn, expire_on_commit=False, **SESSION_OPTIONS)
    return lambda conn: factory(bind=conn, **SESSION_OPTIONS)


class AsyncEngineTransactionBackend(AsyncTransactionBackend):
    def __init__(
        self,
        engine: AsyncEngine,
        session_factory: AsyncSessionFactory | None = None,
        *,
        schema: str = "dbos",
    ) -> None:
        self.engine = engine
        self._make_session = async_session_maker(session_factory)
        self._schema = schema
        self._options = schema_options(engine.dialect.name, schema)

    async def start(self) -> None:
        async with self.engine.connect() as conn:
            await conn.run_sync(create_checkpoint_table, transaction_outputs, self._schema)

    async def recorded_output(self, workflow_id: str, function_id: int) -> RecordedOutput | None:
        async with self.engine.connect() as conn:
            return await conn.run_sync(
                read_output, transaction_outputs, workflow_id, function_id, self._options
            )

    async def run(
        self,
        body: Callable[[Any], Awaitable[T]],
        checkpoint: Checkpoint | None,
        isolation_level: str,
    ) -> T:
        async with self.engine.connect() as conn:
            opened = await conn.run_sync(open_transaction, isolation_level)
            try:
                session = self._make_session(conn)
                try:
                    result = await body(session)
                    ensure_active(opened)
                    await session.flush()
                finally:
                    await session.close()
                insert = (
                    None
                    if checkpoint is None
                    else insert_checkpoint(transaction_outputs, checkpoint, result)
                )
                await conn.run_sync(commit_transaction, opened, insert, self._options)
            except BaseException:
                await conn.run_sync(abort_transaction, opened)
                raise
            return result

    def is_retryable(self, exc: BaseException) -> bool:
        return is_serialization_failure(exc)
