"""Context managers that shape the next workflow started in their scope."""

from __future__ import annotations

import math
from types import TracebackType
from typing import Any

from .error import DBOSException
from .identifiers import check_id, check_optional_id
from .runtime import context as ctx

_MAX_PRIORITY = 2_147_483_647


def is_positive_seconds(value: Any) -> bool:
    """A finite number of seconds above zero (bools are not numbers here)."""
    return (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and math.isfinite(value)
        and value > 0
    )


class _ScopedOption:
    _var: Any
    _value: Any
    _token: Any = None

    def __enter__(self) -> _ScopedOption:
        self._token = self._var.set(self._value)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._var.reset(self._token)


class SetWorkflowID(_ScopedOption):
    """``with SetWorkflowID(id):`` the next workflow started here gets this ID.

    The ID is an idempotency key: starting a workflow with an ID that already ran
    returns the first execution's handle and result instead of running it again.
    """

    def __init__(self, workflow_id: str) -> None:
        check_id(workflow_id, "workflow ID given to SetWorkflowID")
        self._var = ctx.assigned_id
        self._value = ctx.IdAssignment(workflow_id)


class SetWorkflowTimeout(_ScopedOption):
    """``with SetWorkflowTimeout(seconds):`` workflows started here are cancelled after it.

    ``None`` removes an inherited timeout. The deadline is stored, so it holds across
    restarts; for an enqueued workflow it starts when the workflow is dequeued.
    """

    def __init__(self, workflow_timeout_sec: float | None) -> None:
        if workflow_timeout_sec is not None and not is_positive_seconds(workflow_timeout_sec):
            raise DBOSException(
                f"SetWorkflowTimeout needs a positive number of seconds (or None for no "
                f"timeout), got {workflow_timeout_sec!r}"
            )
        self._var = ctx.workflow_timeout
        self._value = workflow_timeout_sec


class SetEnqueueOptions(_ScopedOption):
    """Deduplication ID, priority and partition key for workflows enqueued in scope."""

    def __init__(
        self,
        *,
        deduplication_id: str | None = None,
        priority: int | None = None,
        queue_partition_key: str | None = None,
        app_version: str | None = None,
    ) -> None:
        if priority is not None and (
            isinstance(priority, bool)
            or not isinstance(priority, int)
            or not 1 <= priority <= _MAX_PRIORITY
        ):
            raise DBOSException(
                f"Queue priority must be an integer from 1 to {_MAX_PRIORITY}, got {priority!r}"
            )
        check_optional_id(deduplication_id, "deduplication_id")
        check_optional_id(queue_partition_key, "queue_partition_key")
        self._var = ctx.enqueue_options
        self._value = ctx.EnqueueOptionsContext(
            deduplication_id=deduplication_id,
            priority=priority,
            queue_partition_key=queue_partition_key,
            app_version=app_version,
        )


class SetAuthenticatedUser(_ScopedOption):
    """Record this user and roles on workflows started in scope (adapters use the request's)."""

    def __init__(self, user: str | None, roles: list[str] | None = None) -> None:
        self._var = ctx.authenticated
        self._value = (user, roles)
