"""The system database as the runtime and the client see it: one object per concern."""

from __future__ import annotations

from typing import Any

from ..serialization import Serializer
from . import messages, streams
from .database import Database
from .debounce import DebounceStore
from .migrations import LATEST_VERSION, current_version, drop_all, migrate, notify_channel
from .queues import QueueStore
from .steps import StepStore
from .workflows import WorkflowStore


class SystemDatabase:
    def __init__(
        self,
        url: str,
        serializer: Serializer,
        *,
        schema: str = "dbos",
        pool_size: int = 20,
        engine_kwargs: dict[str, Any] | None = None,
        engine: Any = None,
    ) -> None:
        self.db = Database(
            url, schema=schema, pool_size=pool_size, engine_kwargs=engine_kwargs, engine=engine
        )
        self.serializer = serializer
        self.messages = messages.MessageStore(self.db)
        self.streams = streams.StreamStore(self.db)
        self.workflows = WorkflowStore(self.db, serializer)
        self.steps = StepStore(self.db)
        self.queues = QueueStore(self.db)
        self.debounce = DebounceStore(self.db, notify_channel(schema))

    @property
    def is_sqlite(self) -> bool:
        return self.db.is_sqlite

    @property
    def notify_channel(self) -> str:
        return notify_channel(self.db.schema)

    def open(self, connect_timeout: float) -> None:
        """Wait for the database, then bring its schema up to date."""
        self.db.wait_until_reachable(connect_timeout)
        migrate(self.db)

    def is_initialized(self) -> bool:
        return current_version(self.db) >= LATEST_VERSION

    def reset(self) -> None:
        drop_all(self.db)
        migrate(self.db)

    def close(self) -> None:
        self.db.dispose()
