"""The transaction part of the ``DBOS`` facade: ``@DBOS.transaction`` and ``DBOS.sql_session``."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, cast

from .error import DBOSException
from .runtime.effects import run_async, run_sync
from .runtime.registry import registry
from .transactions.backend import ISOLATION_LEVELS
from .transactions.protocol import session_or_error, transaction_protocol

P = ParamSpec("P")
R = TypeVar("R")


class _SessionProperty:
    """``DBOS.sql_session``: the session of the running transaction (a SQLAlchemy
    ``Session`` of the configured factory, an ``AsyncSession`` in an async transaction)."""

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        return session_or_error()


class TransactionAPI:
    sql_session: Any = _SessionProperty()

    @classmethod
    def transaction(
        cls, isolation_level: str = "SERIALIZABLE", *, name: str | None = None
    ) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Run the function in one database transaction whose checkpoint commits with it.

        Inside a workflow it runs exactly once: its writes and its recorded output are
        one commit. Serialization failures run it again from the start. An ``async def``
        function runs on the configured ``application_async_engine`` with an
        ``AsyncSession`` as ``DBOS.sql_session``.
        """
        level = isolation_level.upper() if isinstance(isolation_level, str) else isolation_level
        if level not in ISOLATION_LEVELS:
            raise DBOSException(
                f"@DBOS.transaction(isolation_level={isolation_level!r}): expected one of "
                + ", ".join(ISOLATION_LEVELS)
            )

        def decorator(func: Callable[P, R]) -> Callable[P, R]:
            reg = registry.register(func, "transaction", name=name)
            wrapped: Any
            if inspect.iscoroutinefunction(func):
                # Runs on DBOSConfig['application_async_engine']; without one the first
                # call raises the seeds' error (configuration may come after decoration).

                async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                    return await run_async(
                        transaction_protocol(reg.name, level, func, args, kwargs, is_async=True)
                    )

                wrapped = functools.wraps(func)(async_wrapper)
            else:

                def wrapper(*args: Any, **kwargs: Any) -> Any:
                    return run_sync(transaction_protocol(reg.name, level, func, args, kwargs))

                wrapped = functools.wraps(func)(wrapper)
            wrapped.__dbos_registration__ = reg
            return cast(Callable[P, R], wrapped)

        return decorator
