"""Durable workflows for Django: add ``"dbos_django"`` to INSTALLED_APPS, add
``dbos_django.middleware.DBOSMiddleware`` and a ``DBOS`` settings dict.

See the Django section of README.md. This module imports Django lazily so that importing it never
needs configured settings.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "enqueue_on_commit",
    "launch",
    "post_fork",
    "start_workflow_on_commit",
    "transaction",
]


def transaction(
    using: str | None = None, isolation_level: str = "SERIALIZABLE", *, name: str | None = None
) -> Any:
    """A ``@DBOS.transaction`` running in ``django.db.transaction.atomic(using=...)``."""
    from .transactions import transaction as _transaction

    return _transaction(using, isolation_level, name=name)


def start_workflow_on_commit(
    func: Any, *args: Any, using: str | None = None, **kwargs: Any
) -> None:
    from .on_commit import start_workflow_on_commit as _start

    _start(func, *args, using=using, **kwargs)


def enqueue_on_commit(
    queue: Any, func: Any, *args: Any, using: str | None = None, **kwargs: Any
) -> None:
    from .on_commit import enqueue_on_commit as _enqueue

    _enqueue(queue, func, *args, using=using, **kwargs)


def launch() -> None:
    """Launch DBOS (configured from settings.DBOS) in this process: for wsgi.py/asgi.py."""
    from .lifecycle import launch as _launch

    _launch()


def post_fork(server: Any = None, worker: Any = None) -> None:
    """gunicorn ``post_fork`` hook: each worker launches its own DBOS."""
    from .lifecycle import launch as _launch

    _launch()
