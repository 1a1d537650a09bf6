"""Changing workflows from outside their execution: cancel and resume."""

from __future__ import annotations

import threading

from ..error import DBOSNonExistentWorkflowError
from .notifier import cancel_key, workflow_key
from .runtime import Runtime


def cancel_in_storage(rt: Runtime, workflow_id: str, with_descendants: bool = True) -> list[str]:
    """Mark the workflow (and its unfinished children) CANCELLED and wake whoever waits."""
    changed = rt.sysdb.workflows.cancel(workflow_id, with_descendants=with_descendants)
    for wid in changed:
        state = rt.active.get(wid)
        if state is not None:
            state.cancelled.set()
        rt.notifier.notify(cancel_key(wid))
        rt.notifier.notify(workflow_key(wid))
    return changed


def cancel_workflow(rt: Runtime, workflow_id: str) -> None:
    if rt.sysdb.workflows.get_outcome_row(workflow_id) is None:
        raise DBOSNonExistentWorkflowError(workflow_id, "cannot cancel it")
    cancel_in_storage(rt, workflow_id, with_descendants=False)


def resume_workflow(rt: Runtime, workflow_id: str) -> None:
    """Continue a workflow from its last completed step, in this process, now."""
    from .workflows import recover_workflow

    if rt.sysdb.workflows.get_outcome_row(workflow_id) is None:
        raise DBOSNonExistentWorkflowError(workflow_id, "cannot resume it")
    running = rt.active.get(workflow_id)
    if running is not None and not running.cancelled.is_set():
        row = rt.sysdb.workflows.get_outcome_row(workflow_id)
        if row is None or row[0] != "CANCELLED":
            return  # it is executing here right now
        # Cancelled before this execution began (or by another process): stop it first.
        running.cancelled.set()
        rt.notifier.notify(cancel_key(workflow_id))
    if not rt.sysdb.workflows.prepare_resume(workflow_id, rt.executor_id, rt.instance_id):
        return
    if running is None:
        recover_workflow(rt, workflow_id)
        return
    # The cancelled execution is still winding down here (inside a step, say):
    # start the new one as soon as it has let go of the workflow.
    threading.Thread(
        target=_resume_after_release, args=(rt, workflow_id), name="dbos-resume", daemon=True
    ).start()


def _resume_after_release(rt: Runtime, workflow_id: str) -> None:
    from .workflows import recover_workflow

    waiter = rt.notifier.subscribe([workflow_key(workflow_id)])
    try:
        while rt.is_active(workflow_id) and not rt.stopped:
            waiter.wait(1.0)
    finally:
        rt.notifier.unsubscribe(waiter)
    if rt.stopped:
        return
    try:
        # A no-op if the old execution finished the workflow after all.
        recover_workflow(rt, workflow_id)
    except Exception as exc:
        if not rt.stopped:
            rt.logger.error("Resuming workflow %s failed: %s", workflow_id, exc)
