"""The Flask adapter of the durable-workflow suite: ``DBOSFlask`` (see README)."""

from .dashboard import dashboard_blueprint
from .extension import DBOSFlask, DBOSFlaskState
from .metrics import metrics_blueprint
from .transactions import DBOSFlaskSessionError, transaction

__all__ = [
    "DBOSFlask",
    "DBOSFlaskSessionError",
    "DBOSFlaskState",
    "dashboard_blueprint",
    "metrics_blueprint",
    "transaction",
]
