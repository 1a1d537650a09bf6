"""The Flask adapter of the durable-workflow suite: ``DBOSFlask`` (see README)."""

from .extension import DBOSFlask, DBOSFlaskState
from .transactions import DBOSFlaskSessionError, transaction

__all__ = ["DBOSFlask", "DBOSFlaskSessionError", "DBOSFlaskState", "transaction"]
