"""The Flask adapter of the durable-workflow suite: ``DBOSFlask`` (see README)."""

from .extension import DBOSFlask, DBOSFlaskState
from .metrics import metrics_blueprint
from .transactions import DBOSFlaskSessionError, transaction

__all__ = [
    "DBOSFlask",
    "DBOSFlaskSessionError",
    "DBOSFlaskState",
    "metrics_blueprint",
    "transaction",
]
