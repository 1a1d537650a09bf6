"""The queues part of the ``DBOS`` facade (a mixin of classmethods)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from .error import DBOSException
from .runtime.scheduler import register_schedule
from .types import WorkflowStatus, rfc3339_to_ms

F = TypeVar("F", bound=Callable[..., Any])

QUEUED_STATUSES = ("ENQUEUED", "PENDING")


class QueueAPI:
    @classmethod
    def list_queued_workflows(
        cls,
        *,
        queue_name: str | None = None,
        status: str | list[str] | None = None,
        start_time: str | None = None,
        end_time: str | None = None,
        name: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
        sort_desc: bool = False,
        load_input: bool = True,
    ) -> list[WorkflowStatus]:
        """Workflows currently on a queue (ENQUEUED, or PENDING after dequeue), oldest first."""
        from .runtime.global_state import get_runtime
        from .storage.workflows import ListFilters

        statuses = [status] if isinstance(status, str) else list(status or QUEUED_STATUSES)
        bad = [s for s in statuses if s not in QUEUED_STATUSES]
        if bad:
            err = DBOSException(
                f"list_queued_workflows(status={bad[0]!r}): queued workflows are ENQUEUED or "
                "PENDING"
            )
            err.http_status = 400
            raise err
        for value, what in ((limit, "limit"), (offset, "offset")):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0
            ):
                err = DBOSException(f"list_queued_workflows({what}={value!r}) must be an int >= 0")
                err.http_status = 400
                raise err
        filters = ListFilters(
            status=statuses,
            start_time_ms=None if start_time is None else rfc3339_to_ms(start_time, "start_time"),
            end_time_ms=None if end_time is None else rfc3339_to_ms(end_time, "end_time"),
            name=name,
            queue_name=queue_name,
            queues_only=True,
            limit=limit,
            offset=offset,
            sort_desc=sort_desc,
            load_input=load_input,
            load_output=False,
        )
        return get_runtime().sysdb.workflows.list(filters)

    @classmethod
    async def list_queued_workflows_async(cls, **filters: Any) -> list[WorkflowStatus]:
        return await asyncio.to_thread(lambda: cls.list_queued_workflows(**filters))

    @classmethod
    def scheduled(cls, cron: str) -> Callable[[F], F]:
        """Run the decorated workflow on a crontab schedule (optional leading seconds field).

        The workflow takes ``(scheduled_time, actual_time)``; each scheduled time runs
        exactly once even when several processes share the database.
        """

        def decorator(func: F) -> F:
            register_schedule(func, cron)
            return func

        return decorator
