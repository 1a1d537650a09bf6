"""Start or enqueue a workflow only once the surrounding ``atomic()`` block commits.

The caller's context (``SetWorkflowID``, the request's idempotency key and user,
timeouts) is captured at the call and used when the commit happens; on rollback nothing
starts. Outside any atomic block the workflow starts at once (Django's on_commit rule).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any

from dbos_core import DBOS


def start_workflow_on_commit(
    func: Callable[..., Any], *args: Any, using: str | None = None, **kwargs: Any
) -> None:
    """``DBOS.start_workflow(func, *args, **kwargs)`` after the transaction on ``using``
    commits. Give the workflow an ID with ``SetWorkflowID`` around this call to find it."""
    from django.db import transaction

    context = contextvars.copy_context()
    transaction.on_commit(
        lambda: context.run(DBOS.start_workflow, func, *args, **kwargs), using=using
    )


def enqueue_on_commit(
    queue: Any, func: Callable[..., Any], *args: Any, using: str | None = None, **kwargs: Any
) -> None:
    """``queue.enqueue(func, *args, **kwargs)`` after the transaction on ``using`` commits."""
    from django.db import transaction

    if not callable(getattr(queue, "enqueue", None)):
        raise TypeError(f"enqueue_on_commit: {queue!r} is not a DBOS Queue")
    context = contextvars.copy_context()
    transaction.on_commit(lambda: context.run(queue.enqueue, func, *args, **kwargs), using=using)
