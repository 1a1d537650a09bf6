"""The interface between the transaction protocol and an application database."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

ISOLATION_LEVELS = ("SERIALIZABLE", "REPEATABLE READ", "READ COMMITTED")


@dataclass(frozen=True)
class Checkpoint:
    """Where a transaction's output is recorded, and how to turn it into text."""

    workflow_id: str
    function_id: int
    serialize: Callable[[Any], str]


@dataclass(frozen=True)
class RecordedOutput:
    """A checkpoint found in the application database (the output, serialized)."""

    output: str | None


class TransactionBackend(ABC):
    """Runs a function in one transaction of the application database.

    The guarantee every backend gives: the function's writes and the checkpoint row
    for ``(workflow_id, function_id)`` commit in the same database transaction, so
    after a crash either both exist or neither does. ``recorded_output`` reads that
    row back, which is how a committed transaction is never run twice.
    """

    @abstractmethod
    def start(self) -> None:
        """Connect and create the checkpoint table if it does not exist."""

    @abstractmethod
    def stop(self) -> None:
        """Close connections; must return promptly."""

    @abstractmethod
    def recorded_output(self, workflow_id: str, function_id: int) -> RecordedOutput | None:
        """The checkpoint of a committed transaction, or None."""

    @abstractmethod
    def run(
        self,
        body: Callable[[Any], T],
        checkpoint: Checkpoint | None,
        isolation_level: str,
    ) -> T:
        """Open a transaction, call ``body(session)``, write the checkpoint (if any) with
        the body's result in the same transaction, and commit. Roll back on any error."""

    @abstractmethod
    def is_retryable(self, exc: BaseException) -> bool:
        """True for errors that mean "run the whole transaction again" (serialization
        failures, deadlocks, a busy SQLite database)."""
