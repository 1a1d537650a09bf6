"""The queues part of the ``DBOS`` facade (a mixin of classmethods)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from .runtime.scheduler import register_schedule

F = TypeVar("F", bound=Callable[..., Any])


class QueueAPI:
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
