"""Changing workflows from outside their execution: cancel and resume."""

from __future__ import annotations

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
    if rt.is_active(workflow_id):
        return
    if rt.sysdb.workflows.prepare_resume(workflow_id, rt.executor_id):
        recover_workflow(rt, workflow_id)
