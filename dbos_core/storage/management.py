"""Operations on stored workflows shared by ``DBOS``, ``DBOSClient``, the admin server and the CLI.

Everything here needs only the system database and its serializer, never a running
runtime, so an operator's process can do it as well as the application.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from ..error import DBOSException, DBOSNonExistentWorkflowError, DBOSUnknownStepError
from ..identifiers import check_id, check_lookup_id
from ..serialization import deserialize_error, deserialize_value
from ..types import ALL_STATUSES, INTERNAL_QUEUE_NAME, StepInfo, WorkflowStatus, rfc3339_to_ms
from .schema import operation_outputs, workflow_status
from .system_database import SystemDatabase
from .workflows import ListFilters, NewWorkflow

# Workflows forked or resumed by a process that cannot run them itself (the client, the
# CLI) wait here, ENQUEUED, for an application process whose version matches.

QUEUED_STATUSES = ("ENQUEUED", "PENDING")
ws = workflow_status
oo = operation_outputs


def bad_input(message: str) -> DBOSException:
    err = DBOSException(message)
    err.http_status = 400
    return err


# -- listing --------------------------------------------------------------------


def _str_list(value: Any, what: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise bad_input(f"{what} must be a string or a list of strings, got {value!r}")


def _opt_str(value: Any, what: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise bad_input(f"{what} must be a string, got {type(value).__name__} {value!r}")
    return value


def _opt_count(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise bad_input(f"{what} must be a non-negative integer, got {value!r}")
    return value


def build_filters(
    *,
    workflow_ids: Any = None,
    status: Any = None,
    start_time: Any = None,
    end_time: Any = None,
    name: Any = None,
    app_version: Any = None,
    user: Any = None,
    limit: Any = None,
    offset: Any = None,
    sort_desc: Any = False,
    workflow_id_prefix: Any = None,
    queue_name: Any = None,
    queues_only: bool = False,
    load_input: bool = True,
    load_output: bool = True,
) -> ListFilters:
    """Check every filter's type and turn timestamps into epoch ms; 400-style errors."""
    statuses = _str_list(status, "status")
    if statuses is not None:
        allowed = QUEUED_STATUSES if queues_only else tuple(sorted(ALL_STATUSES))
        unknown = [s for s in statuses if s not in allowed]
        if unknown:
            raise bad_input(
                f"Unknown workflow status {unknown[0]!r}; expected one of {', '.join(allowed)}"
            )
    elif queues_only:
        statuses = list(QUEUED_STATUSES)
    if not isinstance(sort_desc, bool):
        raise bad_input(f"sort_desc must be a bool, got {sort_desc!r}")
    if isinstance(workflow_ids, str):
        raise bad_input("workflow_ids must be a list of workflow IDs, not one string")
    return ListFilters(
        workflow_ids=_str_list(workflow_ids, "workflow_ids"),
        status=statuses,
        start_time_ms=None if start_time is None else rfc3339_to_ms(start_time, "start_time"),
        end_time_ms=None if end_time is None else rfc3339_to_ms(end_time, "end_time"),
        name=_opt_str(name, "name"),
        app_version=_opt_str(app_version, "app_version"),
        user=_opt_str(user, "user"),
        queue_name=_opt_str(queue_name, "queue_name"),
        queues_only=queues_only,
        workflow_id_prefix=_opt_str(workflow_id_prefix, "workflow_id_prefix"),
        limit=_opt_count(limit, "limit"),
        offset=_opt_count(offset, "offset"),
        sort_desc=sort_desc,
        load_input=load_input,
        load_output=load_output,
    )


def list_workflows(sysdb: SystemDatabase, filters: ListFilters) -> list[WorkflowStatus]:
    return sysdb.workflows.list(filters)


def get_workflow(sysdb: SystemDatabase, workflow_id: str) -> WorkflowStatus:
    status = sysdb.workflows.get_status(_workflow_id(workflow_id))
    if status is None:
        raise DBOSNonExistentWorkflowError(workflow_id)
    return status


def _workflow_id(value: Any) -> str:
    """Accept an ID or anything with a ``workflow_id`` (the seeds pass a WorkflowStatus)."""
    if isinstance(value, str) and value:
        return check_lookup_id(value)
    inner = getattr(value, "workflow_id", None)
    if isinstance(inner, str) and inner:
        return check_lookup_id(inner)
    raise bad_input(f"Expected a workflow ID (or a WorkflowStatus), got {value!r}")


# -- steps ----------------------------------------------------------------------


def list_step_rows(sysdb: SystemDatabase, workflow: Any) -> list[Any]:
    """``(function_id, function_name, output, error, child_workflow_id)`` of each recorded
    step, in order, output and error as stored (operator views read these)."""
    workflow_id = _workflow_id(workflow)
    if sysdb.workflows.get_outcome_row(workflow_id) is None:
        raise DBOSNonExistentWorkflowError(workflow_id)
    stmt = (
        sa.select(oo.c.function_id, oo.c.function_name, oo.c.output, oo.c.error)
        .add_columns(oo.c.child_workflow_id)
        .where(oo.c.workflow_uuid == workflow_id)
        .order_by(oo.c.function_id)
    )
    with sysdb.db.connect() as conn:
        return list(conn.execute(stmt).all())


def list_steps(sysdb: SystemDatabase, workflow: Any) -> list[StepInfo]:
    """The recorded steps of a workflow, in order, outputs and errors deserialized."""
    steps: list[StepInfo] = []
    for function_id, name, output, error, child in list_step_rows(sysdb, workflow):
        steps.append(
            {
                "function_id": int(function_id),
                "function_name": name,
                "output": deserialize_value(
                    sysdb.serializer, output, f"output of step {function_id}"
                ),
                "error": deserialize_error(sysdb.serializer, error),
                "child_workflow_id": child,
            }
        )
    return steps


# -- fork -----------------------------------------------------------------------


def fork(
    sysdb: SystemDatabase,
    workflow_id: str,
    start_step: Any,
    *,
    new_workflow_id: str,
    application_version: str | None,
    executor_id: str,
    run_here: bool,
) -> str:
    """Create a new workflow from another's inputs, copying its steps before ``start_step``.

    With ``run_here`` the copy is PENDING on ``executor_id`` (the caller then runs it);
    otherwise it is ENQUEUED on the internal queue for an application process to run.
    One transaction: either the whole fork exists or nothing does.
    """
    check_lookup_id(workflow_id, "workflow ID to fork")
    check_id(new_workflow_id, "new workflow ID of the fork")
    if isinstance(start_step, bool) or not isinstance(start_step, int) or start_step < 1:
        raise bad_input(
            f"start_step must be a positive integer (a step's function_id), got {start_step!r}"
        )
    if application_version is not None and not isinstance(application_version, str):
        raise bad_input(f"application_version must be a string, got {application_version!r}")
    source = sysdb.workflows.get_row(workflow_id)
    if source is None:
        raise DBOSNonExistentWorkflowError(workflow_id, "cannot fork it")
    m = source._mapping
    with sysdb.db.connect() as conn:
        last = conn.execute(
            sa.select(sa.func.max(oo.c.function_id)).where(oo.c.workflow_uuid == workflow_id)
        ).scalar()
    last_step = int(last or 0)
    if start_step > last_step + 1:
        raise DBOSUnknownStepError(
            f"Cannot fork workflow {workflow_id!r} from step {start_step}: it has only "
            f"{last_step} recorded step(s), so start_step must be between 1 and {last_step + 1}"
        )
    roles = m["authenticated_roles"]
    new = NewWorkflow(
        workflow_id=new_workflow_id,
        name=m["name"],
        status="PENDING" if run_here else "ENQUEUED",
        inputs=m["inputs"],
        executor_id=executor_id,
        application_version=application_version or m["application_version"],
        application_id=m["application_id"],
        class_name=m["class_name"],
        config_name=m["config_name"],
        authenticated_user=m["authenticated_user"],
        assumed_role=m["assumed_role"],
        authenticated_roles=None if roles is None else _json_list(roles),
        request_id=m["request_id"],
        queue_name=None if run_here else INTERNAL_QUEUE_NAME,
        workflow_timeout_ms=m["workflow_timeout_ms"],
        forked_from=workflow_id,
        max_recovery_attempts=m["max_recovery_attempts"],
        created_at=int(time.time() * 1000),
    )
    values = new.values()
    # Recovery (or the queue) counts the first start itself.
    values["recovery_attempts"] = 0
    with sysdb.db.transaction() as conn:
        exists = conn.execute(
            sa.select(ws.c.workflow_uuid).where(ws.c.workflow_uuid == new_workflow_id)
        ).first()
        if exists is not None:
            conflict = DBOSException(
                f"Cannot fork into workflow ID {new_workflow_id!r}: a workflow with that ID exists"
            )
            conflict.http_status = 409
            raise conflict
        conn.execute(ws.insert().values(values))
        sysdb.steps.copy_prefix(conn, workflow_id, new_workflow_id, start_step)
    return new_workflow_id


def _json_list(text: str) -> list[str]:
    import json

    value = json.loads(text)
    return [str(v) for v in value] if isinstance(value, list) else []


# -- cancel and resume without a runtime ------------------------------------------


def cancel_stored(sysdb: SystemDatabase, workflow_id: str) -> list[str]:
    """Cancel from outside the application: mark it CANCELLED (PG triggers tell listeners)."""
    if sysdb.workflows.get_outcome_row(workflow_id) is None:
        raise DBOSNonExistentWorkflowError(workflow_id, "cannot cancel it")
    return sysdb.workflows.cancel(workflow_id)


def enqueue_resume(sysdb: SystemDatabase, workflow_id: str) -> bool:
    """Resume from outside the application: ENQUEUED on the internal queue, attempts reset.

    A finished (SUCCESS or ERROR) workflow is left as it is; returns whether it changed.
    """
    if sysdb.workflows.get_outcome_row(workflow_id) is None:
        raise DBOSNonExistentWorkflowError(workflow_id, "cannot resume it")
    stmt = (
        ws.update()
        .where(
            ws.c.workflow_uuid == workflow_id,
            ws.c.status.in_(("CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED", "ENQUEUED", "PENDING")),
        )
        .values(
            status="ENQUEUED",
            queue_name=INTERNAL_QUEUE_NAME,
            recovery_attempts=0,
            deduplication_id=None,
            started_at_epoch_ms=None,
            workflow_deadline_epoch_ms=None,
            updated_at=int(time.time() * 1000),
        )
    )
    with sysdb.db.connect() as conn:
        return conn.execute(stmt).rowcount > 0


def queue_summary(sysdb: SystemDatabase) -> list[dict[str, Any]]:
    """Per queue: how many workflows are ENQUEUED and how many PENDING (for operators)."""
    stmt = (
        sa.select(ws.c.queue_name, ws.c.status, sa.func.count())
        .where(ws.c.queue_name.is_not(None), ws.c.status.in_(QUEUED_STATUSES))
        .group_by(ws.c.queue_name, ws.c.status)
        .order_by(ws.c.queue_name)
    )
    with sysdb.db.connect() as conn:
        rows = conn.execute(stmt).all()
    summary: dict[str, dict[str, Any]] = {}
    for queue, status, count in rows:
        entry = summary.setdefault(queue, {"queue_name": queue, "ENQUEUED": 0, "PENDING": 0})
        entry[status] = int(count)
    return list(summary.values())


def queue_backlog(sysdb: SystemDatabase) -> list[tuple[str, int, int]]:
    """Per queue: how many workflows wait ENQUEUED and when the oldest was created (ms).

    One grouped read for the metrics scrape. The debounce hold queue is left out: its
    workflows wait for their debounce delay, not for a worker.
    """
    from .debounce import HOLD_QUEUE

    stmt = (
        sa.select(ws.c.queue_name, sa.func.count(), sa.func.min(ws.c.created_at))
        .where(ws.c.queue_name.is_not(None), ws.c.status == "ENQUEUED")
        .group_by(ws.c.queue_name)
    )
    with sysdb.db.connect() as conn:
        rows = conn.execute(stmt).all()
    return [
        (str(queue), int(count), int(oldest))
        for queue, count, oldest in rows
        if queue != HOLD_QUEUE
    ]
