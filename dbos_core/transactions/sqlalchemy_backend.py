"""The default transaction backend: a SQLAlchemy session on ``application_database_url``."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..storage.database import Database
from .backend import Checkpoint, RecordedOutput, TransactionBackend
from .errors import is_serialization_failure

T = TypeVar("T")

_metadata = sa.MetaData(schema="dbos")

# Lives in the application database (not the system database): it must commit
# in the same transaction as the user's writes.
transaction_outputs = sa.Table(
    "transaction_outputs",
    _metadata,
    sa.Column("workflow_uuid", sa.Text, nullable=False),
    sa.Column("function_id", sa.Integer, nullable=False),
    sa.Column("output", sa.Text),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.PrimaryKeyConstraint("workflow_uuid", "function_id"),
)


class SQLAlchemyTransactionBackend(TransactionBackend):
    def __init__(
        self,
        url: str,
        *,
        schema: str = "dbos",
        engine_kwargs: dict[str, Any] | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        kwargs = dict(engine_kwargs or {})
        pool_size = int(kwargs.pop("pool_size", 20))
        self.db = Database(url, schema=schema, pool_size=pool_size, engine_kwargs=kwargs)
        self._connect_timeout = connect_timeout

    def start(self) -> None:
        self.db.wait_until_reachable(self._connect_timeout)
        with self.db.transaction() as conn:
            if not self.db.is_sqlite:
                conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{self.db.schema}"')
            transaction_outputs.create(conn, checkfirst=True)

    def stop(self) -> None:
        self.db.dispose()

    def recorded_output(self, workflow_id: str, function_id: int) -> RecordedOutput | None:
        stmt = sa.select(transaction_outputs.c.output).where(
            transaction_outputs.c.workflow_uuid == workflow_id,
            transaction_outputs.c.function_id == function_id,
        )
        with self.db.connect() as conn:
            row = conn.execute(stmt).first()
        return None if row is None else RecordedOutput(row[0])

    def run(
        self,
        body: Callable[[Any], T],
        checkpoint: Checkpoint | None,
        isolation_level: str,
    ) -> T:
        with self.db.engine.connect() as conn:
            # The connection is in autocommit mode; the transaction boundaries are ours.
            # DEFERRED on SQLite, as in every backend: a conflicting lock upgrade fails at
            # once with SQLITE_BUSY and is retried (see errors.py).
            if self.db.is_sqlite:
                conn.exec_driver_sql("BEGIN")
            else:
                conn.exec_driver_sql(f"BEGIN ISOLATION LEVEL {isolation_level}")
            session = Session(bind=conn, autoflush=True, expire_on_commit=False)
            try:
                result = body(session)
                session.flush()
                if checkpoint is not None:
                    conn.execute(
                        transaction_outputs.insert().values(
                            workflow_uuid=checkpoint.workflow_id,
                            function_id=checkpoint.function_id,
                            output=checkpoint.serialize(result),
                            created_at=int(time.time() * 1000),
                        )
                    )
                conn.exec_driver_sql("COMMIT")
            except BaseException:
                try:
                    conn.exec_driver_sql("ROLLBACK")
                except Exception:
                    conn.invalidate()
                raise
            finally:
                session.close()
            return result

    def is_retryable(self, exc: BaseException) -> bool:
        return is_serialization_failure(exc)
