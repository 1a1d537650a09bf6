"""Starting, executing and awaiting workflows.

A workflow ID is an idempotency key: creating a workflow is one ``INSERT ... ON
CONFLICT DO NOTHING``, and whoever's insert lands executes it. Everyone else (a
duplicate request, a replaying parent) waits for the stored outcome. Workflows
left PENDING by a dead process are run again only by recovery or an explicit
resume, never by a caller that happens to reuse the ID.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..error import (
    DBOSConflictingRegistrationError,
    DBOSInvalidStepCallError,
    DBOSNonExistentWorkflowError,
    DBOSWorkflowCancelledError,
)
from ..identifiers import check_reused_id
from ..serialization import (
    decode_workflow_outcome,
    deserialize_value,
    serialize_error,
    serialize_value,
)
from ..storage.records import ANY_OWNER, StepRecord
from ..types import TERMINAL_STATUSES, WorkflowInputs
from . import context as ctx
from .effects import Blocking, Protocol, UserCall, Wait, run_async, run_sync
from .notifier import cancel_key, queue_key, workflow_key
from .registry import Registration, registry
from .runtime import DBOSDestroyedError, Runtime
from .steps import current_runtime

if TYPE_CHECKING:
    from ..storage.workflows import ChildLink, NewWorkflow

Mode = Literal["call", "start", "enqueue"]


@dataclass
class QueueRequest:
    queue_name: str
    deduplication_id: str | None = None
    priority: int = 0
    partition_key: str | None = None
    # SetEnqueueOptions(app_version=...): only executors of that version may dequeue it.
    app_version: str | None = None


@dataclass
class Started:
    workflow_id: str
    # True when this call created the workflow (and so must see to its execution).
    created: bool
    state: ctx.WorkflowState | None
    call_args: tuple[Any, ...]
    call_kwargs: dict[str, Any]


def split_instance(reg: Registration, args: tuple[Any, ...]) -> tuple[Any, tuple[Any, ...]]:
    """For a method of a configured class, separate ``self`` (found again by config name)."""
    from ..classes import DBOSConfiguredInstance

    if reg.is_method and args and isinstance(args[0], DBOSConfiguredInstance):
        return args[0], args[1:]
    return None, args


def _current_user() -> tuple[str | None, list[str] | None, str | None]:
    parent = ctx.current_workflow.get()
    if parent is not None:
        return parent.authenticated_user, parent.authenticated_roles, parent.assumed_role
    explicit = ctx.authenticated.get()
    if explicit is not None:
        return explicit[0], explicit[1], None
    request = ctx.request_context.get()
    if request is not None:
        user, roles = request.user()
        return user, roles, request.assumed_role
    return None, None, None


def _caller_is_bound() -> bool:
    """Whether this start speaks for a known caller, so a reused ID must be theirs.

    Bound: a web request (the adapters' request scope, even when anonymous), code inside
    ``SetAuthenticatedUser``, and a workflow that was itself started by a request or for a
    user (its children inherit that). Not bound: plain code (a script, a job, a test) that
    chose an ID with ``SetWorkflowID``: the seeds' idempotency, whoever started it first.
    """
    parent = ctx.current_workflow.get()
    if parent is not None:
        return parent.authenticated_user is not None or parent.request_id is not None
    return ctx.authenticated.get() is not None or ctx.request_context.get() is not None


def start_protocol(
    reg: Registration,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    mode: Mode,
    queue: QueueRequest | None = None,
    insert: Callable[[NewWorkflow, ChildLink | None], tuple[bool, Any]] | None = None,
) -> Protocol[Started]:
    """Create the workflow's row (or find it): the one durable write of a start.

    ``insert`` replaces the plain INSERT (the debouncer merges into a waiting row).
    """
    from ..storage.workflows import ChildLink, NewWorkflow

    if ctx.current_step.get() is not None:
        step = ctx.current_step.get()
        raise DBOSInvalidStepCallError(
            f"Cannot start workflow {reg.name!r} from inside step "
            f"{step.name if step else '?'!r}: start, call or enqueue workflows from the "
            "workflow function instead"
        )
    if ctx.in_transaction.get():
        raise DBOSInvalidStepCallError(
            f"Cannot start workflow {reg.name!r} from inside a transaction"
        )
    rt = current_runtime()
    parent = ctx.current_workflow.get()
    instance, call_args = split_instance(reg, args)
    if instance is not None and reg.class_name is None:
        raise DBOSConflictingRegistrationError(
            f"Workflow {reg.name!r} is a method of {type(instance).__name__}, which is not a "
            "DBOS class: decorate the class with @DBOS.dbos_class() so that recovery can find "
            "the instance by its config_name"
        )
    assigned = ctx.take_assigned_workflow_id()
    link: ChildLink | None = None
    if parent is not None:
        from .steps import begin_step

        function_id, record = begin_step(rt, parent, reg.name)
        if record is not None and record.child_workflow_id is not None:
            workflow_id = record.child_workflow_id
        else:
            workflow_id = assigned or f"{parent.workflow_id}-{function_id}"
            link = ChildLink(parent.workflow_id, function_id, reg.name)
    else:
        workflow_id = assigned or str(uuid.uuid4())

    now = int(time.time() * 1000)
    timeout = ctx.workflow_timeout.get()
    if ctx.timeout_is_set(timeout):
        timeout_ms = None if timeout is None else int(timeout * 1000)
        deadline = None if timeout_ms is None else now + timeout_ms
    else:
        timeout_ms = None
        deadline = parent.deadline_ms if parent is not None else None
    if mode == "enqueue":
        # Start-to-completion: the clock of an enqueued workflow starts at dequeue.
        deadline = None if timeout_ms is not None else deadline

    user, roles, role = _current_user()
    request = ctx.request_context.get()
    inputs: WorkflowInputs = {"args": call_args, "kwargs": kwargs}
    inputs_text = serialize_value(rt.serializer, inputs, f"inputs of workflow {reg.name!r}")
    queue_name = queue.queue_name if queue else None
    trace_context = rt.telemetry.start_context(reg.name, workflow_id, mode, queue_name)
    new = NewWorkflow(
        workflow_id=workflow_id,
        name=reg.name,
        status="ENQUEUED" if mode == "enqueue" else "PENDING",
        inputs=inputs_text,
        executor_id=rt.executor_id,
        application_version=queue.app_version if queue and queue.app_version else rt.app_version,
        application_id=rt.config.name,
        class_name=reg.class_name if instance is not None else None,
        config_name=getattr(instance, "config_name", None) if instance is not None else None,
        authenticated_user=user,
        authenticated_roles=roles,
        assumed_role=role,
        request_id=parent.request_id
        if parent is not None
        else (request.request_id if request else None),
        queue_name=queue.queue_name if queue else None,
        queue_partition_key=queue.partition_key if queue else None,
        deduplication_id=queue.deduplication_id if queue else None,
        priority=queue.priority if queue else 0,
        workflow_timeout_ms=timeout_ms,
        workflow_deadline_epoch_ms=deadline,
        parent_workflow_id=parent.workflow_id if parent is not None else None,
        max_recovery_attempts=reg.max_recovery_attempts,
        owner_instance=rt.instance_id,
        created_at=now,
        trace_context=trace_context,
    )
    inserter = insert or rt.sysdb.workflows.insert
    created, row = yield Blocking(lambda: inserter(new, link))
    if not created:
        assert row is not None
        check_reused_id(workflow_id, row._mapping, reg.name, user, _caller_is_bound())
        return Started(workflow_id, False, None, call_args, kwargs)
    if mode == "enqueue":
        rt.notifier.notify(queue_key(queue.queue_name if queue else ""))
        return Started(workflow_id, True, None, call_args, kwargs)
    state = ctx.WorkflowState(
        workflow_id=workflow_id,
        name=reg.name,
        deadline_ms=deadline,
        authenticated_user=user,
        authenticated_roles=roles,
        assumed_role=role,
        request_id=new.request_id,
        runtime=rt,
        trace_context=trace_context,
    )
    if instance is not None:
        call_args = (instance, *call_args)
    return Started(workflow_id, True, state, call_args, kwargs)


def execute_protocol(
    rt: Runtime,
    reg: Registration,
    state: ctx.WorkflowState,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Protocol[Any]:
    """Run the workflow body here and store its outcome; returns or raises that outcome."""
    existing = rt.claim(state)
    if existing is not None:
        return (yield from await_result_protocol(rt, state.workflow_id))
    tokens = _enter_workflow(state)
    try:
        try:
            result = yield from rt.telemetry.workflow(state, UserCall(reg.func, args, kwargs))
        except DBOSDestroyedError:
            raise  # leave the workflow PENDING: a later launch recovers it
        except BaseException as exc:
            if not isinstance(exc, Exception) or rt.stopped:
                # KeyboardInterrupt, SystemExit, destroy(): the process is going away.
                raise
            if isinstance(exc, DBOSWorkflowCancelledError) and state.is_cancelled():
                yield Blocking(lambda: _ensure_cancelled(rt, state))
                raise
            error_text = serialize_error(rt.serializer, exc)
            yield Blocking(
                lambda: rt.sysdb.workflows.finish(state.workflow_id, "ERROR", None, error_text)
            )
            raise
        try:
            output = serialize_value(rt.serializer, result, f"result of workflow {reg.name!r}")
        except Exception as exc:
            error_text = serialize_error(rt.serializer, exc)
            yield Blocking(
                lambda: rt.sysdb.workflows.finish(state.workflow_id, "ERROR", None, error_text)
            )
            raise
        if rt.stopped:
            raise DBOSDestroyedError("DBOS was destroyed before the workflow's outcome was stored")
        yield Blocking(
            lambda: rt.sysdb.workflows.finish(state.workflow_id, "SUCCESS", output, None)
        )
        return result
    finally:
        _exit_workflow(tokens)
        rt.release(state.workflow_id)
        rt.notifier.notify(workflow_key(state.workflow_id))


def _ensure_cancelled(rt: Runtime, state: ctx.WorkflowState) -> None:
    """A workflow stopped by its deadline: make sure it and its children are CANCELLED.

    An explicit cancel has already written the status (and a resume since may have
    made the workflow PENDING again, which must stand), so only the deadline case
    writes, and only while the stored deadline is the one this execution ran with.
    """
    from .management import cancel_in_storage

    if state.deadline_ms is None or time.time() * 1000 < state.deadline_ms:
        return
    row = rt.sysdb.workflows.get_row(state.workflow_id)
    if row is None or row._mapping["workflow_deadline_epoch_ms"] != state.deadline_ms:
        return
    cancel_in_storage(rt, state.workflow_id, with_descendants=True)


def _enter_workflow(state: ctx.WorkflowState) -> list[Any]:
    # Nothing scoped to the caller (its request, its SetWorkflowID) reaches the body.
    return [
        (ctx.current_workflow, ctx.current_workflow.set(state)),
        (ctx.current_step, ctx.current_step.set(None)),
        (ctx.in_transaction, ctx.in_transaction.set(False)),
        (ctx.assigned_id, ctx.assigned_id.set(None)),
        (ctx.request_context, ctx.request_context.set(None)),
        (ctx.workflow_timeout, ctx.workflow_timeout.set(ctx._UNSET)),
        (ctx.enqueue_options, ctx.enqueue_options.set(None)),
    ]


def _exit_workflow(tokens: list[Any]) -> None:
    for var, token in reversed(tokens):
        var.reset(token)


def await_result_protocol(
    rt: Runtime, workflow_id: str, timeout: float | None = None
) -> Protocol[Any]:
    """Wait until the workflow's outcome is stored, woken by its completion, then decode it."""
    state = ctx.current_workflow.get()
    keys = [workflow_key(workflow_id)]
    if state is not None:
        keys.append(cancel_key(state.workflow_id))
    waiter = rt.notifier.subscribe(keys)
    give_up = None if timeout is None else time.monotonic() + timeout
    parked = 1 if state is not None else 0
    rt.telemetry.waiting(parked)
    try:
        while True:
            row = yield Blocking(lambda: rt.sysdb.workflows.get_outcome_row(workflow_id))
            if row is None:
                raise DBOSNonExistentWorkflowError(workflow_id)
            if row[0] in TERMINAL_STATUSES:
                return decode_workflow_outcome(rt.serializer, workflow_id, row[0], row[1], row[2])
            wait = rt.poll_interval
            if state is not None:
                state.check_cancelled()
                if state.deadline_ms is not None:
                    wait = min(wait, max(0.0, state.deadline_ms / 1000 - time.time()) + 0.001)
            if give_up is not None:
                remaining = give_up - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"Workflow {workflow_id!r} did not finish within {timeout}s")
                wait = min(wait, remaining)
            yield Wait(waiter, wait)
    finally:
        rt.telemetry.waiting(-parked)
        rt.notifier.unsubscribe(waiter)


def dispatch(
    rt: Runtime,
    reg: Registration,
    state: ctx.WorkflowState,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    same_loop: bool = False,
) -> Future[Any] | asyncio.Task[Any]:
    """Execute a workflow in the background: a workflow thread, or an event loop.

    Returns the future of the execution (the queue dispatcher frees a slot when it is done).
    """
    if reg.is_async:
        coro = run_async(execute_protocol(rt, reg, state, args, kwargs))
        if same_loop:
            import contextvars

            task = asyncio.get_running_loop().create_task(coro, context=contextvars.Context())
            task.add_done_callback(_log_background_failure(rt, state.workflow_id))
            return task
        cfuture = rt.run_coroutine(coro)
        cfuture.add_done_callback(_log_background_failure(rt, state.workflow_id))
        return cfuture
    future = rt.submit(lambda: run_sync(execute_protocol(rt, reg, state, args, kwargs)))
    future.add_done_callback(_log_background_failure(rt, state.workflow_id))
    return future


def _log_background_failure(rt: Runtime, workflow_id: str) -> Any:
    def callback(fut: Any) -> None:
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is not None and not isinstance(exc, Exception):
            rt.logger.error("Workflow %s stopped abruptly: %r", workflow_id, exc)
        elif isinstance(exc, DBOSDestroyedError):
            rt.logger.debug("Workflow %s left PENDING at shutdown", workflow_id)

    return callback


def call_protocol(
    reg: Registration, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Protocol[Any]:
    """Calling a workflow function directly: run it inline and return its result."""
    started = yield from start_protocol(reg, args, kwargs, "call")
    rt = current_runtime()
    if started.created and started.state is not None:
        return (
            yield from execute_protocol(
                rt, reg, started.state, started.call_args, started.call_kwargs
            )
        )
    return (yield from await_result_protocol(rt, started.workflow_id))


def recover_workflow(rt: Runtime, workflow_id: str, expected_owner: Any = ANY_OWNER) -> bool:
    """Run a PENDING workflow again from its checkpoints; False if it cannot be.

    ``expected_owner``: take it over only from that (dead) instance, so that one of
    several processes recovering at once wins.
    """
    if rt.is_active(workflow_id):
        return True
    attempts = rt.sysdb.workflows.increment_recovery_attempts(
        workflow_id, rt.executor_id, rt.instance_id, expected_owner
    )
    if attempts is None:
        return False
    row = rt.sysdb.workflows.get_row(workflow_id)
    if row is None:
        return False
    m = row._mapping
    reg = registry.get(m["name"])
    if reg is None or reg.kind != "workflow":
        rt.logger.error(
            "Cannot recover workflow %s: function %r is not registered in this process",
            workflow_id,
            m["name"],
        )
        return False
    limit = m["max_recovery_attempts"] or reg.max_recovery_attempts
    if attempts > limit + 1:
        rt.logger.warning(
            "Workflow %s exceeded its %d recovery attempts; marking it MAX_RECOVERY_ATTEMPTS_EXCEEDED",
            workflow_id,
            limit,
        )
        rt.sysdb.workflows.mark_max_recovery_exceeded(workflow_id)
        rt.notifier.notify(workflow_key(workflow_id))
        return False
    args, kwargs = load_call(rt, reg, m)
    state = state_from_row(rt, m)
    dispatch(rt, reg, state, args, kwargs)
    rt.telemetry.recovered(reg.name)
    return True


def state_from_row(
    rt: Runtime, m: Any, recorded: dict[int, StepRecord] | None = None
) -> ctx.WorkflowState:
    """The execution state of a stored workflow; its checkpoints are read unless given."""
    import json

    roles = m["authenticated_roles"]
    return ctx.WorkflowState(
        workflow_id=m["workflow_uuid"],
        name=m["name"],
        recorded=rt.sysdb.steps.load(m["workflow_uuid"]) if recorded is None else recorded,
        deadline_ms=m["workflow_deadline_epoch_ms"],
        authenticated_user=m["authenticated_user"],
        authenticated_roles=None if roles is None else json.loads(roles),
        assumed_role=m["assumed_role"],
        request_id=m["request_id"],
        runtime=rt,
        trace_context=m["trace_context"],
        queue_name=m["queue_name"],
        recovery_attempts=m["recovery_attempts"],
    )


def load_call(rt: Runtime, reg: Registration, m: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The stored inputs, with the configured instance put back in front for methods."""
    inputs = deserialize_value(
        rt.serializer, m["inputs"], f"inputs of workflow {m['workflow_uuid']!r}"
    )
    args = tuple(inputs.get("args", ()))
    kwargs = dict(inputs.get("kwargs", {}))
    class_name, config_name = m["class_name"], m["config_name"]
    if class_name is not None and config_name is not None:
        instance = registry.instances.get((class_name, config_name))
        if instance is None:
            raise DBOSNonExistentWorkflowError(
                m["workflow_uuid"],
                f"its instance {class_name}({config_name!r}) was not created before launch",
            )
        args = (instance, *args)
    return args, kwargs


def recover_pending(rt: Runtime) -> list[str]:
    """Take over the PENDING workflows of this executor and version whose owner is dead.

    Runs at launch and then periodically: a process that shares the executor ID with
    live siblings leaves their work alone, and the work of one that died is picked up
    by whichever process looks first.
    """
    recovered: list[str] = []
    try:
        pending = rt.sysdb.workflows.pending_for_executor(
            rt.executor_id, rt.app_version, except_owner=rt.instance_id
        )
        alive = {
            owner
            for owner in {owner for _, owner in pending if owner is not None}
            if rt.liveness is None or rt.liveness.is_alive(owner)
        }
    except Exception as exc:
        if not rt.stopped:  # a shutdown racing the first query is not worth a report
            rt.logger.error("Recovery could not list pending workflows: %s", exc)
        return recovered
    for workflow_id, owner in pending:
        if rt.stopped:
            break
        if owner in alive:
            continue
        try:
            if recover_workflow(rt, workflow_id, expected_owner=owner):
                recovered.append(workflow_id)
        except Exception as exc:
            rt.logger.error("Recovery of workflow %s failed: %s", workflow_id, exc)
    if recovered:
        rt.logger.info("Recovered %d pending workflow(s)", len(recovered))
    return recovered
