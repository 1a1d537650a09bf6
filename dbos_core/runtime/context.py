"""Where the runtime keeps "what is running here": context variables only.

``contextvars`` follow both threads we start (we copy the context explicitly) and
asyncio tasks (which copy it themselves), so one mechanism serves sync and async.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from ..error import DBOSWorkflowCancelledError
from ..storage.records import StepRecord


@dataclass
class WorkflowState:
    """One execution of one workflow in this process."""

    workflow_id: str
    name: str
    # Checkpoints recorded by earlier executions; empty for a brand-new workflow.
    recorded: dict[int, StepRecord] = field(default_factory=dict)
    deadline_ms: int | None = None
    authenticated_user: str | None = None
    authenticated_roles: list[str] | None = None
    assumed_role: str | None = None
    request_id: str | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    # The runtime executing it: a leftover execution of a destroyed runtime must not
    # write through its successor.
    runtime: Any = None
    # For observability: the stored trace it belongs to, its queue, its execution count.
    trace_context: str | None = None
    queue_name: str | None = None
    recovery_attempts: int = 1
    _next_function_id: int = 1

    def next_function_id(self) -> int:
        fid = self._next_function_id
        self._next_function_id += 1
        return fid

    def peek_function_id(self) -> int:
        return self._next_function_id

    def is_cancelled(self) -> bool:
        if self.cancelled.is_set():
            return True
        return self.deadline_ms is not None and time.time() * 1000 >= self.deadline_ms

    def check_cancelled(self) -> None:
        if self.is_cancelled():
            raise DBOSWorkflowCancelledError(self.workflow_id)


@dataclass
class StepState:
    name: str
    function_id: int | None
    attempt: int = 1


@dataclass
class IdAssignment:
    """A workflow ID waiting for the next workflow started in its scope."""

    workflow_id: str
    used: bool = False


@dataclass
class RequestContext:
    """What a web adapter knows about the current request."""

    idempotency_key: str | None = None
    request_id: str | None = None
    # Called at most once, when the first workflow of the request starts.
    user_resolver: Callable[[], tuple[str | None, list[str] | None]] | None = None
    assumed_role: str | None = None
    key_used: bool = False
    _resolved: tuple[str | None, list[str] | None] | None = None

    def take_idempotency_key(self) -> str | None:
        if self.idempotency_key is None or self.key_used:
            return None
        self.key_used = True
        return self.idempotency_key

    def user(self) -> tuple[str | None, list[str] | None]:
        if self._resolved is None:
            self._resolved = (
                self.user_resolver() if self.user_resolver is not None else (None, None)
            )
        return self._resolved


@dataclass
class EnqueueOptionsContext:
    deduplication_id: str | None = None
    priority: int | None = None
    queue_partition_key: str | None = None
    app_version: str | None = None


_UNSET: Any = object()

current_workflow: ContextVar[WorkflowState | None] = ContextVar("dbos_workflow", default=None)
current_step: ContextVar[StepState | None] = ContextVar("dbos_step", default=None)
in_transaction: ContextVar[bool] = ContextVar("dbos_in_transaction", default=False)
assigned_id: ContextVar[IdAssignment | None] = ContextVar("dbos_assigned_id", default=None)
# None means "explicitly no timeout" (SetWorkflowTimeout(None)); _UNSET means inherit.
workflow_timeout: ContextVar[Any] = ContextVar("dbos_workflow_timeout", default=_UNSET)
enqueue_options: ContextVar[EnqueueOptionsContext | None] = ContextVar(
    "dbos_enqueue_options", default=None
)
request_context: ContextVar[RequestContext | None] = ContextVar("dbos_request", default=None)
authenticated: ContextVar[tuple[str | None, list[str] | None] | None] = ContextVar(
    "dbos_authenticated", default=None
)


def timeout_is_set(value: Any) -> bool:
    return value is not _UNSET


def take_assigned_workflow_id() -> str | None:
    """The ID the caller chose for the next workflow, consumed by the first start."""
    assignment = assigned_id.get()
    if assignment is not None and not assignment.used:
        assignment.used = True
        return assignment.workflow_id
    request = request_context.get()
    if request is not None:
        return request.take_idempotency_key()
    return None
