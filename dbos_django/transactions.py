"""Django-ORM-backed ``@DBOS.transaction``: the function runs in ``transaction.atomic``
on a database alias, and its checkpoint row is written through the same connection in the
same database transaction, so both commit or neither does.

``dbos_django.transaction(using="alias")`` chooses the alias per function; plain
``@DBOS.transaction()`` uses ``settings.DBOS['transaction_database']``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, ParamSpec, TypeVar, cast

from dbos_core import DBOS
from dbos_core.error import DBOSException
from dbos_core.integration import set_transaction_backend_factory
from dbos_core.transactions import (
    Checkpoint,
    RecordedOutput,
    TransactionBackend,
    is_serialization_failure,
)

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

# The alias chosen by @dbos_django.transaction(using=...) for the call in progress.
_alias: ContextVar[str | None] = ContextVar("dbos_django_alias", default=None)


class DBOSDjangoAtomicError(DBOSException):
    """A DBOS transaction was called inside an outer ``atomic()`` block."""

    code = "DJANGO_OUTER_ATOMIC"


class DjangoTransactionBackend(TransactionBackend):
    def __init__(self, default_alias: str = "default") -> None:
        self.default_alias = default_alias
        self._checked_aliases: set[str] = set()

    def alias(self) -> str:
        return _alias.get() or self.default_alias

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def _check_table(self, alias: str) -> None:
        if alias in self._checked_aliases:
            return
        from django.db import connections

        from .models import TransactionOutput

        table = TransactionOutput._meta.db_table
        with connections[alias].cursor() as cursor:
            tables = connections[alias].introspection.table_names(cursor)
        if table not in tables:
            raise DBOSException(
                f"The DBOS checkpoint table {table!r} does not exist in database {alias!r}: "
                f"run `python manage.py migrate dbos_django --database={alias}`"
            )
        self._checked_aliases.add(alias)

    def recorded_output(self, workflow_id: str, function_id: int) -> RecordedOutput | None:
        from django.db import connections

        from .models import TransactionOutput

        alias = self.alias()
        connection = connections[alias]
        try:
            self._check_table(alias)
            row = (
                TransactionOutput.objects.using(alias)
                .filter(workflow_uuid=workflow_id, function_id=function_id)
                .values_list("output")
                .first()
            )
            if row is None:
                return None
            return RecordedOutput(row[0])
        finally:
            _release(connection)

    def run(
        self, body: Callable[[Any], T], checkpoint: Checkpoint | None, isolation_level: str
    ) -> T:
        from django.db import connections, transaction

        from .models import TransactionOutput

        alias = self.alias()
        connection = connections[alias]
        if connection.in_atomic_block:
            why = (
                f" (ATOMIC_REQUESTS is on for {alias!r}: mark the view with "
                "@transaction.non_atomic_requests or start the workflow in the background)"
                if connection.settings_dict.get("ATOMIC_REQUESTS")
                else ""
            )
            raise DBOSDjangoAtomicError(
                f"A DBOS transaction cannot run inside an outer atomic() block on database "
                f"{alias!r}{why}: its checkpoint would commit only with the outer block, so "
                "exactly-once could not hold. Call it outside atomic(), or use "
                "dbos_django.start_workflow_on_commit() to start the workflow after commit"
            )
        connection.close_if_unusable_or_obsolete()
        try:
            if checkpoint is not None:
                self._check_table(alias)
            with transaction.atomic(using=alias):
                if connection.vendor == "postgresql":
                    with connection.cursor() as cursor:
                        cursor.execute(f"SET TRANSACTION ISOLATION LEVEL {isolation_level}")
                result = body(connection)
                if checkpoint is not None:
                    TransactionOutput.objects.using(alias).create(
                        workflow_uuid=checkpoint.workflow_id,
                        function_id=checkpoint.function_id,
                        output=checkpoint.serialize(result),
                        created_at=int(time.time() * 1000),
                    )
            return result
        finally:
            _release(connection)

    def is_retryable(self, exc: BaseException) -> bool:
        # The classification every backend shares (Django chains the driver's error).
        return is_serialization_failure(exc)


def _release(connection: Any) -> None:
    """Outside an atomic block, close the connection as Django does at the end of a
    request (obsolete per CONN_MAX_AGE, or broken): DBOS threads have no request cycle."""
    if not connection.in_atomic_block:
        connection.close_if_unusable_or_obsolete()


def install(default_alias: str) -> None:
    """Route @DBOS.transaction to the Django ORM (called by AppConfig.ready)."""
    set_transaction_backend_factory(lambda rt: DjangoTransactionBackend(default_alias))


def transaction(
    using: str | None = None,
    isolation_level: str = "SERIALIZABLE",
    *,
    name: str | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """``@DBOS.transaction`` on the Django database ``using`` (default: the setting).

    Inside a workflow the function's ORM writes and its checkpoint commit together, so it
    runs exactly once; serialization failures run it again from the start.
    """
    if using is not None and (not isinstance(using, str) or not using):
        raise DBOSException(f"dbos_django.transaction(using={using!r}): give a database alias")

    def decorator(func: Callable[P, R]) -> Callable[P, R]:
        inner: Any = DBOS.transaction(isolation_level, name=name)(func)
        if using is None:
            return cast(Callable[P, R], inner)
        _check_alias(using)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            token = _alias.set(using)
            try:
                return inner(*args, **kwargs)
            finally:
                _alias.reset(token)

        wrapper.__dbos_registration__ = inner.__dbos_registration__  # type: ignore[attr-defined]
        return cast(Callable[P, R], wrapper)

    return decorator


def _check_alias(alias: str) -> None:
    from django.conf import settings

    if settings.configured and alias not in settings.DATABASES:
        raise DBOSException(
            f"dbos_django.transaction(using={alias!r}): no such alias in settings.DATABASES "
            f"({', '.join(settings.DATABASES)})"
        )
