"""Plain value types of the public API: statuses, step records, workflow inputs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypedDict

# The queue on which forks, client resumes and debounced starts wait for a dispatcher.
INTERNAL_QUEUE_NAME = "_dbos_internal_queue"


class WorkflowStatusString(StrEnum):
    ENQUEUED = "ENQUEUED"
    PENDING = "PENDING"
    SUCCESS = "SUCCESS"
    ERROR = "ERROR"
    CANCELLED = "CANCELLED"
    MAX_RECOVERY_ATTEMPTS_EXCEEDED = "MAX_RECOVERY_ATTEMPTS_EXCEEDED"


ALL_STATUSES = frozenset(s.value for s in WorkflowStatusString)
TERMINAL_STATUSES = frozenset(
    {
        WorkflowStatusString.SUCCESS.value,
        WorkflowStatusString.ERROR.value,
        WorkflowStatusString.CANCELLED.value,
        WorkflowStatusString.MAX_RECOVERY_ATTEMPTS_EXCEEDED.value,
    }
)


class WorkflowInputs(TypedDict):
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


class StepInfo(TypedDict):
    # The unique ID of the step in the workflow, one-indexed.
    function_id: int
    # The (fully qualified) name of the step.
    function_name: str
    output: Any | None
    error: BaseException | None
    # If the step starts or retrieves the result of a workflow, its ID.
    child_workflow_id: str | None


@dataclass
class WorkflowStatus:
    """A workflow's stored state, as returned by handles and management calls."""

    workflow_id: str
    status: str
    name: str
    recovery_attempts: int = 0
    class_name: str | None = None
    config_name: str | None = None
    authenticated_user: str | None = None
    assumed_role: str | None = None
    authenticated_roles: list[str] | None = None
    input: WorkflowInputs | None = None
    output: Any | None = None
    error: BaseException | None = None
    # Unix epoch milliseconds.
    created_at: int | None = None
    updated_at: int | None = None
    queue_name: str | None = None
    executor_id: str | None = None
    app_version: str | None = None
    app_id: str | None = None
    workflow_timeout_ms: int | None = None
    workflow_deadline_epoch_ms: int | None = None
    deduplication_id: str | None = None
    priority: int | None = None
    queue_partition_key: str | None = None
    parent_workflow_id: str | None = None
    forked_from: str | None = None
    dequeued_at: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly view (timestamps as RFC 3339 strings) for CLIs and HTTP."""
        return {
            "workflow_id": self.workflow_id,
            "status": self.status,
            "name": self.name,
            "recovery_attempts": self.recovery_attempts,
            "class_name": self.class_name,
            "config_name": self.config_name,
            "authenticated_user": self.authenticated_user,
            "assumed_role": self.assumed_role,
            "authenticated_roles": self.authenticated_roles,
            "input": None if self.input is None else repr(self.input),
            "output": None if self.output is None else repr(self.output),
            "error": None if self.error is None else repr(self.error),
            "created_at": ms_to_rfc3339(self.created_at),
            "updated_at": ms_to_rfc3339(self.updated_at),
            "queue_name": self.queue_name,
            "executor_id": self.executor_id,
            "app_version": self.app_version,
            "workflow_timeout_ms": self.workflow_timeout_ms,
            "workflow_deadline_epoch_ms": self.workflow_deadline_epoch_ms,
            "deduplication_id": self.deduplication_id,
            "priority": self.priority,
            "queue_partition_key": self.queue_partition_key,
            "parent_workflow_id": self.parent_workflow_id,
            "forked_from": self.forked_from,
        }


def ms_to_rfc3339(ms: int | None) -> str | None:
    if ms is None:
        return None
    return (
        datetime.fromtimestamp(ms / 1000, tz=UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def rfc3339_to_ms(value: str | datetime, what: str) -> int:
    """Parse an RFC 3339 timestamp (or a datetime) into epoch milliseconds."""
    from .error import DBOSException

    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            err = DBOSException(
                f"{what} {value!r} is not an RFC 3339 timestamp (for example 2025-04-22T03:00:00Z)"
            )
            err.http_status = 400
            raise err from None
    else:
        err = DBOSException(f"{what} must be an RFC 3339 string, got {type(value).__name__}")
        err.http_status = 400
        raise err
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)
