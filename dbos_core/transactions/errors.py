"""Errors of transactions, shared by every backend.

``is_serialization_failure`` says which database errors mean "run the whole transaction
again". One classification shared by the SQLAlchemy (sync and async), Flask-SQLAlchemy and
Django backends, so the same conflict is retried the same way whatever ORM wrote it:

- PostgreSQL: serialization failure (SQLSTATE 40001) and deadlock (40P01).
- SQLite: SQLITE_BUSY and SQLITE_LOCKED (with their extended codes, BUSY_SNAPSHOT
  included). Transactions begin DEFERRED: a transaction that read and then tries to
  write while another holds the write lock, or after another committed since its
  read, gets SQLITE_BUSY at once (SQLite does not wait there, as waiting could
  deadlock). That is SQLite's serialization failure; nothing of it was committed.

Drivers wrap errors differently (SQLAlchemy keeps the driver's error in ``.orig``,
Django chains it as ``__cause__``), so the chain is followed to the driver's error.
"""

from __future__ import annotations

from ..error import DBOSException

RETRY_SQLSTATES = frozenset({"40001", "40P01"})
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6


def is_serialization_failure(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        sqlstate = getattr(current, "sqlstate", None)
        if isinstance(sqlstate, str):
            return sqlstate in RETRY_SQLSTATES
        code = getattr(current, "sqlite_errorcode", None)
        if isinstance(code, int):
            return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return False


class DBOSTransactionEndedError(DBOSException):
    """The function ended the database transaction itself (``session.rollback()``, or a
    commit on a session that controls the connection): its checkpoint could no longer
    commit with its writes, so nothing of it is kept."""

    code = "TRANSACTION_ENDED_EARLY"


def transaction_ended_error(what: str) -> DBOSTransactionEndedError:
    return DBOSTransactionEndedError(
        f"{what} ended the database transaction of a @DBOS.transaction function before it "
        "returned. DBOS commits the function's writes together with its checkpoint: raise "
        "an exception to roll back, and let the function return to commit (session.commit() "
        "inside it only flushes)"
    )
