"""The Flask adapter of the durable-workflow suite: ``DBOSFlask`` (see README)."""

from .extension import DBOSFlask, DBOSFlaskState
from .metrics import metrics_blueprint

__all__ = ["DBOSFlask", "DBOSFlaskState", "metrics_blueprint"]
