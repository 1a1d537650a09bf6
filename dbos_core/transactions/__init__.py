"""Transactions: a function's database writes and its checkpoint commit together.

The core talks to the application database through ``TransactionBackend``; the
SQLAlchemy backend (``DBOS.sql_session``) is the default, and an adapter can
supply another (the Django ORM) through ``dbos_core.integration``.
"""

from __future__ import annotations

from .backend import Checkpoint, RecordedOutput, TransactionBackend
from .errors import DBOSTransactionEndedError, is_serialization_failure

__all__ = [
    "Checkpoint",
    "DBOSTransactionEndedError",
    "RecordedOutput",
    "TransactionBackend",
    "is_serialization_failure",
]
