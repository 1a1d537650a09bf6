"""The Flask adapter of the durable-workflow suite: ``DBOSFlask`` (see README)."""

from .dashboard import dashboard_blueprint
from .extension import DBOSFlask, DBOSFlaskState

__all__ = ["DBOSFlask", "DBOSFlaskState", "dashboard_blueprint"]
