"""The process-wide DBOS runtime (the seeds' API is a singleton: ``DBOS.launch()``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..error import DBOSNotLaunchedError

if TYPE_CHECKING:
    from .runtime import Runtime

_runtime: Runtime | None = None


def set_runtime(runtime: Runtime | None) -> None:
    global _runtime
    _runtime = runtime


def peek_runtime() -> Runtime | None:
    return _runtime


def get_runtime() -> Runtime:
    """The launched runtime, or a clear error saying what to do first."""
    rt = _runtime
    if rt is None:
        raise DBOSNotLaunchedError(
            "DBOS is not configured: create it with DBOS(config=...) and call DBOS.launch() first"
        )
    if not rt.launched:
        raise DBOSNotLaunchedError("DBOS is configured but not launched: call DBOS.launch() first")
    if rt.forked_away():
        raise DBOSNotLaunchedError(
            "DBOS was launched in a parent process before this process was forked; threads and "
            "connections do not survive a fork, so call DBOS.launch() in each worker process "
            "(for example in gunicorn's post_fork hook)"
        )
    if rt.stopped:
        raise DBOSNotLaunchedError("DBOS was destroyed: create and launch a new DBOS instance")
    return rt
