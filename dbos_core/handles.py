"""Handles to workflows: their ID, their status, and their result when it is ready."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from .error import DBOSNonExistentWorkflowError
from .runtime.effects import Blocking, Protocol, run_async, run_sync
from .runtime.global_state import get_runtime
from .runtime.steps import checkpointed
from .runtime.workflows import await_result_protocol
from .types import WorkflowStatus

R = TypeVar("R")


def result_protocol(workflow_id: str, timeout: float | None = None) -> Protocol[Any]:
    rt = get_runtime()
    # Inside a workflow, reading a child's result is a step: replay gets the same answer.
    return (
        yield from checkpointed(
            "DBOS.getResult",
            lambda: await_result_protocol(rt, workflow_id, timeout),
            child_workflow_id=workflow_id,
        )
    )


def status_protocol(workflow_id: str) -> Protocol[WorkflowStatus]:
    rt = get_runtime()

    def body() -> Protocol[WorkflowStatus]:
        status = yield Blocking(lambda: rt.sysdb.workflows.get_status(workflow_id))
        if status is None:
            raise DBOSNonExistentWorkflowError(workflow_id)
        return status  # type: ignore[no-any-return]

    return (yield from checkpointed("DBOS.getStatus", body))


class WorkflowHandle(Generic[R]):
    """Returned by ``DBOS.start_workflow``, ``retrieve_workflow`` and ``enqueue``."""

    def __init__(self, workflow_id: str) -> None:
        self.workflow_id = workflow_id

    def get_workflow_id(self) -> str:
        return self.workflow_id

    def get_result(
        self, *, polling_interval_sec: float | None = None, timeout: float | None = None
    ) -> R:
        """Wait for the workflow to finish; return its result or raise its error."""
        return run_sync(result_protocol(self.workflow_id, timeout))  # type: ignore[no-any-return]

    def get_status(self) -> WorkflowStatus:
        return run_sync(status_protocol(self.workflow_id))

    def __repr__(self) -> str:
        return f"WorkflowHandle({self.workflow_id!r})"


class WorkflowHandleAsync(Generic[R]):
    """The async twin of ``WorkflowHandle`` (same logic, awaited)."""

    def __init__(self, workflow_id: str) -> None:
        self.workflow_id = workflow_id

    def get_workflow_id(self) -> str:
        return self.workflow_id

    async def get_result(
        self, *, polling_interval_sec: float | None = None, timeout: float | None = None
    ) -> R:
        result: R = await run_async(result_protocol(self.workflow_id, timeout))
        return result

    async def get_status(self) -> WorkflowStatus:
        return await run_async(status_protocol(self.workflow_id))

    def __repr__(self) -> str:
        return f"WorkflowHandleAsync({self.workflow_id!r})"
