"""The Flask adapter of the durable-workflow suite: ``DBOSFlask`` (see README)."""

from .extension import DBOSFlask, DBOSFlaskState

__all__ = ["DBOSFlask", "DBOSFlaskState"]
