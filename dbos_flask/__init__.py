"""The Flask adapter of the durable-workflow suite: ``DBOSFlask`` (see README)."""

from .dashboard import dashboard_blueprint
from .extension import DBOSFlask, DBOSFlaskState
from .metrics import metrics_blueprint

__all__ = ["DBOSFlask", "DBOSFlaskState", "dashboard_blueprint", "metrics_blueprint"]
