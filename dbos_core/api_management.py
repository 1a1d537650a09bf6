"""The management part of the ``DBOS`` facade (a mixin of classmethods).

Listing workflows and steps and forking act on stored state through
``storage/management.py``, the same functions the client, the admin server and
the CLI use. Called inside a workflow they are steps, so replay sees the same
answers. Cancel and resume live with messaging (their semantics are the
runtime's, in ``runtime/management.py``).
"""

from __future__ import annotations

import uuid
from typing import Any

from .handles import WorkflowHandle, WorkflowHandleAsync
from .runtime import context as ctx
from .runtime.effects import Blocking, Protocol, run_async, run_sync
from .runtime.global_state import get_runtime
from .runtime.runtime import Runtime, Service, service_factories
from .runtime.steps import checkpointed
from .types import StepInfo, WorkflowStatus


def _list_protocol(step_name: str, **filters: Any) -> Protocol[list[WorkflowStatus]]:
    from .storage import management as ops

    rt = get_runtime()
    checked = ops.build_filters(**filters)

    def body() -> Protocol[list[WorkflowStatus]]:
        found: list[WorkflowStatus] = yield Blocking(lambda: ops.list_workflows(rt.sysdb, checked))
        return found

    return (yield from checkpointed(step_name, body))


def _steps_protocol(workflow_id: Any) -> Protocol[list[StepInfo]]:
    from .storage import management as ops

    rt = get_runtime()

    def body() -> Protocol[list[StepInfo]]:
        steps: list[StepInfo] = yield Blocking(lambda: ops.list_steps(rt.sysdb, workflow_id))
        return steps

    return (yield from checkpointed("DBOS.listWorkflowSteps", body))


def fork_in_runtime(
    rt: Runtime,
    workflow_id: str,
    start_step: int,
    application_version: str | None,
    new_workflow_id: str,
) -> str:
    """Fork in an application process: run the fork here when this process runs its code
    version, otherwise leave it on the internal queue for a process of the right version."""
    from .runtime.workflows import recover_workflow
    from .storage import management as ops

    source = rt.sysdb.workflows.get_row(workflow_id)
    version = application_version or (
        source._mapping["application_version"] if source is not None else None
    )
    run_here = version == rt.app_version
    ops.fork(
        rt.sysdb,
        workflow_id,
        start_step,
        new_workflow_id=new_workflow_id,
        application_version=application_version,
        executor_id=rt.executor_id,
        run_here=run_here,
    )
    if run_here:
        recover_workflow(rt, new_workflow_id)
    return new_workflow_id


def _fork_protocol(
    workflow_id: str, start_step: int, application_version: str | None
) -> Protocol[str]:
    rt = get_runtime()
    new_id = ctx.take_assigned_workflow_id() or str(uuid.uuid4())

    def body() -> Protocol[str]:
        forked: str = yield Blocking(
            lambda: fork_in_runtime(rt, workflow_id, start_step, application_version, new_id)
        )
        return forked

    return (yield from checkpointed("DBOS.forkWorkflow", body))


class ManagementAPI:
    @classmethod
    def list_workflows(
        cls,
        *,
        workflow_ids: list[str] | None = None,
        status: str | list[str] | None = None,
        start_time: str | None = None,
        end_time: str | None = None,
        name: str | None = None,
        app_version: str | None = None,
        user: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
        sort_desc: bool = False,
        workflow_id_prefix: str | None = None,
        load_input: bool = True,
        load_output: bool = True,
    ) -> list[WorkflowStatus]:
        """Workflows matching every given filter, oldest first unless ``sort_desc``."""
        return run_sync(
            _list_protocol(
                "DBOS.listWorkflows",
                workflow_ids=workflow_ids,
                status=status,
                start_time=start_time,
                end_time=end_time,
                name=name,
                app_version=app_version,
                user=user,
                limit=limit,
                offset=offset,
                sort_desc=sort_desc,
                workflow_id_prefix=workflow_id_prefix,
                load_input=load_input,
                load_output=load_output,
            )
        )

    @classmethod
    async def list_workflows_async(cls, **filters: Any) -> list[WorkflowStatus]:
        return await run_async(_list_protocol("DBOS.listWorkflows", **filters))

    @classmethod
    def list_queued_workflows(
        cls,
        *,
        queue_name: str | None = None,
        status: str | list[str] | None = None,
        start_time: str | None = None,
        end_time: str | None = None,
        name: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
        sort_desc: bool = False,
        load_input: bool = True,
    ) -> list[WorkflowStatus]:
        """Workflows currently on a queue (ENQUEUED, or PENDING and dequeued)."""
        return run_sync(
            _list_protocol(
                "DBOS.listQueuedWorkflows",
                queue_name=queue_name,
                status=status,
                start_time=start_time,
                end_time=end_time,
                name=name,
                limit=limit,
                offset=offset,
                sort_desc=sort_desc,
                queues_only=True,
                load_input=load_input,
                load_output=False,
            )
        )

    @classmethod
    async def list_queued_workflows_async(cls, **filters: Any) -> list[WorkflowStatus]:
        return await run_async(
            _list_protocol("DBOS.listQueuedWorkflows", queues_only=True, **filters)
        )

    @classmethod
    def list_workflow_steps(cls, workflow_id: str) -> list[StepInfo]:
        """The recorded steps of a workflow (``function_id`` is one-indexed)."""
        return run_sync(_steps_protocol(workflow_id))

    @classmethod
    async def list_workflow_steps_async(cls, workflow_id: str) -> list[StepInfo]:
        return await run_async(_steps_protocol(workflow_id))

    @classmethod
    def fork_workflow(
        cls, workflow_id: str, start_step: int, *, application_version: str | None = None
    ) -> WorkflowHandle[Any]:
        """Start a new execution of a workflow from ``start_step``; earlier steps are copied."""
        return WorkflowHandle(
            run_sync(_fork_protocol(workflow_id, start_step, application_version))
        )

    @classmethod
    async def fork_workflow_async(
        cls, workflow_id: str, start_step: int, *, application_version: str | None = None
    ) -> WorkflowHandleAsync[Any]:
        forked = await run_async(_fork_protocol(workflow_id, start_step, application_version))
        return WorkflowHandleAsync(forked)


def _admin_server_factory(rt: Runtime) -> Service | None:
    """Start the admin server only when configured; its module loads only then."""
    if not rt.config.run_admin_server:
        return None
    from .admin_server import AdminServer

    return AdminServer(rt)


service_factories.append(_admin_server_factory)
