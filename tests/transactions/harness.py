"""One harness per transaction backend, behind the same small interface, so that one
test suite (test_backend_suite.py) runs unchanged against every backend.

Each backend module in ``backends/`` defines, with that backend's own way of writing
(Core statements on DBOS.sql_session, SQLModel, an AsyncSession, Flask-SQLAlchemy models
through db.session, Django models), the same transactions and workflows:

- ``add_item(name, fail)``: insert an item, return how many items exist; ``fail`` raises
  after the insert; the crash tests kill the process after the insert;
- ``bump(label)``: read the counter, meet the other transaction (``race``), write it + 1;
- ``isolation()``: the isolation level the transaction runs at (PostgreSQL);
- ``insert_body(name)``: a body for calling the backend's ``run`` directly.
"""

from __future__ import annotations

import asyncio
import importlib
from abc import ABC, abstractmethod
from types import ModuleType
from typing import Any, ClassVar

import sqlalchemy as sa

from dbos_core import DBOS, DBOSConfig, SetWorkflowID
from dbos_core.runtime.global_state import get_runtime
from dbos_core.transactions import Checkpoint, protocol

BACKENDS = {
    "sqlalchemy-url": "tests.transactions.backends.sqlalchemy_url",
    "sqlalchemy-engine": "tests.transactions.backends.sqlalchemy_engine",
    "sqlalchemy-async": "tests.transactions.backends.sqlalchemy_async",
    "flask-sqlalchemy": "tests.transactions.backends.flask_sqlalchemy",
    "django-orm": "tests.transactions.backends.django_orm",
}


def harness_for(name: str, sys_url: str, app_url: str) -> Harness:
    module = importlib.import_module(BACKENDS[name])
    harness: Harness = module.Harness(sys_url, app_url)
    return harness


class Harness(ABC):
    name: ClassVar[str]
    is_async: ClassVar[bool] = False
    # Where the checkpoint rows live: (schema on PostgreSQL or None, table).
    checkpoint_schema: ClassVar[str | None] = None
    checkpoint_table: ClassVar[str] = "dbos_transaction_outputs"

    def __init__(self, sys_url: str, app_url: str) -> None:
        self.sys_url = sys_url
        self.app_url = app_url

    def base_config(self) -> DBOSConfig:
        return {
            "name": "txn-suite",
            "system_database_url": self.sys_url,
            "notification_poll_interval": 0.05,
            # The crash tests recover in another process: the same version there.
            "application_version": "txn-suite",
        }

    @property
    @abstractmethod
    def ops(self) -> ModuleType:
        """The backend module with the transactions and workflows."""

    @abstractmethod
    def launch(self) -> None:
        """Configure DBOS on this backend (and its checkpoint table) and launch it."""

    def destroy(self) -> None:
        DBOS.destroy()

    # -- operations, the same for every backend --------------------------------

    def add_item(self, workflow_id: str, name: str, fail: bool = False) -> int:
        with SetWorkflowID(workflow_id):
            return int(self.ops.add_item_workflow(name, fail))

    def add_item_outside_workflow(self, name: str) -> int:
        return int(self.ops.add_item(name, False))

    def bump_concurrently(self, labels: list[str]) -> list[int]:
        handles = [DBOS.start_workflow(self.ops.bump_workflow, label) for label in labels]
        return [int(h.get_result()) for h in handles]

    def isolation_levels(self) -> tuple[str, str]:
        """(default level, level of a transaction declared REPEATABLE READ)."""
        default, declared = self.ops.isolation_workflow()
        return str(default), str(declared)

    def backend_insert(self, checkpoint: Checkpoint, name: str) -> int:
        """Run an insert with ``checkpoint`` straight through the backend."""
        backend = protocol.backend_for(get_runtime())
        return int(backend.run(self.ops.insert_body(name), checkpoint, "SERIALIZABLE"))

    def wrap_backend_run(self, after: Any) -> None:
        """Call ``after()`` right after the backend's run returns (its commit is done)."""
        backend = protocol.backend_for(get_runtime())
        original = backend.run

        def run(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            after()
            return result

        backend.run = run  # type: ignore[method-assign]

    def recover(self, workflow_id: str) -> Any:
        return DBOS.retrieve_workflow(workflow_id).get_result(timeout=60)


class AsyncHarness(Harness):
    """The same operations, awaited (each one in its own event loop, as a caller's)."""

    is_async = True

    def add_item(self, workflow_id: str, name: str, fail: bool = False) -> int:
        async def go() -> int:
            with SetWorkflowID(workflow_id):
                return int(await self.ops.add_item_workflow(name, fail))

        return asyncio.run(go())

    def add_item_outside_workflow(self, name: str) -> int:
        return int(asyncio.run(self.ops.add_item(name, False)))

    def bump_concurrently(self, labels: list[str]) -> list[int]:
        async def go() -> list[int]:
            handles = [
                await DBOS.start_workflow_async(self.ops.bump_workflow, label) for label in labels
            ]
            return [int(await h.get_result()) for h in handles]

        return asyncio.run(go())

    def isolation_levels(self) -> tuple[str, str]:
        default, declared = asyncio.run(self.ops.isolation_workflow())
        return str(default), str(declared)

    def backend_insert(self, checkpoint: Checkpoint, name: str) -> int:
        async def go() -> int:
            backend = await protocol.async_backend_for(get_runtime())
            return int(await backend.run(self.ops.insert_body(name), checkpoint, "SERIALIZABLE"))

        return asyncio.run(go())

    def wrap_backend_run(self, after: Any) -> None:
        backend = asyncio.run(protocol.async_backend_for(get_runtime()))
        original = backend.run

        async def run(*args: Any, **kwargs: Any) -> Any:
            result = await original(*args, **kwargs)
            after()
            return result

        backend.run = run  # type: ignore[method-assign]


def create_app_tables(app_url: str) -> None:
    from tests.transactions.common import app_metadata, sync_url

    engine = sa.create_engine(sync_url(app_url))
    try:
        app_metadata.create_all(engine)
    finally:
        engine.dispose()
