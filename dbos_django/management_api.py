"""Cancel and resume through the public API when it has them (issue 3 adds
``DBOS.cancel_workflow``/``resume_workflow``), else through the runtime's functions."""

from __future__ import annotations

from dbos_core import DBOS


def cancel_workflow(workflow_id: str) -> None:
    method = getattr(DBOS, "cancel_workflow", None)
    if method is not None:
        method(workflow_id)
        return
    from dbos_core.runtime import global_state, management

    management.cancel_workflow(global_state.get_runtime(), workflow_id)


def resume_workflow(workflow_id: str) -> None:
    method = getattr(DBOS, "resume_workflow", None)
    if method is not None:
        method(workflow_id)
        return
    from dbos_core.runtime import global_state, management

    management.resume_workflow(global_state.get_runtime(), workflow_id)
