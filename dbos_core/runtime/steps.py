"""Running a step: replay its checkpoint, or run it (with retries) and record it once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from ..error import (
    DBOSMaxStepRetriesExceeded,
    DBOSUnexpectedStepError,
    DBOSWorkflowCancelledError,
)
from ..serialization import deserialize_error, deserialize_value, serialize_error, serialize_value
from ..storage.records import StepRecord
from . import context as ctx
from .effects import Blocking, Protocol, UserCall, Wait
from .notifier import cancel_key
from .registry import StepOptions
from .runtime import DBOSDestroyedError, Runtime

T = TypeVar("T")


def current_runtime() -> Runtime:
    """The runtime of the workflow running here, else the process's launched runtime."""
    state = ctx.current_workflow.get()
    if state is not None and state.runtime is not None:
        rt: Runtime = state.runtime
        return rt
    from .global_state import get_runtime

    return get_runtime()


def replay(rt: Runtime, record: StepRecord) -> Any:
    """Return (or raise) what a recorded step produced."""
    if record.error is not None:
        error = deserialize_error(rt.serializer, record.error)
        assert error is not None
        raise error
    return deserialize_value(
        rt.serializer, record.output, f"output of step {record.function_name!r}"
    )


def begin_step(rt: Runtime, state: ctx.WorkflowState, name: str) -> tuple[int, StepRecord | None]:
    """Take the next step slot of the workflow: its ID and, on replay, its checkpoint."""
    if rt.stopped:
        raise DBOSDestroyedError("DBOS was destroyed while the workflow was running")
    function_id = state.next_function_id()
    record = state.recorded.get(function_id)
    if record is not None:
        if record.function_name != name:
            raise DBOSUnexpectedStepError(
                state.workflow_id, function_id, name, record.function_name
            )
        return function_id, record
    # Preemption point: a cancelled or timed-out workflow stops before its next step.
    state.check_cancelled()
    return function_id, None


def record_outcome(
    rt: Runtime,
    state: ctx.WorkflowState,
    function_id: int,
    name: str,
    started_ms: int,
    result: Any,
    error: BaseException | None,
    child_workflow_id: str | None = None,
) -> Protocol[Any]:
    """Checkpoint a finished step (one statement) and return what the workflow should see."""
    from ..storage.steps import StepNotRecorded

    if rt.stopped:
        # A destroyed runtime writes nothing more: the workflow stays PENDING for recovery.
        raise DBOSDestroyedError("DBOS was destroyed while the workflow was running")
    if error is None:
        output_text = serialize_value(rt.serializer, result, f"output of step {name!r}")
        error_text = None
    else:
        output_text, error_text = None, serialize_error(rt.serializer, error)
    try:
        ours, stored = yield Blocking(
            lambda: rt.sysdb.steps.record(
                state.workflow_id,
                function_id,
                name,
                output=output_text,
                error=error_text,
                child_workflow_id=child_workflow_id,
                started_at_ms=started_ms,
            )
        )
    except StepNotRecorded:
        state.cancelled.set()
        raise DBOSWorkflowCancelledError(state.workflow_id) from None
    if ours:
        if error is not None:
            raise error
        return result
    # Another execution of this workflow recorded the step first: its outcome wins.
    return replay(rt, stored)


def checkpointed(
    name: str,
    body: Callable[[], Protocol[T]],
    *,
    child_workflow_id: str | None = None,
) -> Protocol[T]:
    """Run ``body`` as one step of the current workflow: at most once, replayed after that.

    Outside a workflow (or nested in a step) the body just runs. The DBOS operations
    that must be deterministic inside workflows (``recv``, ``sleep``, ``get_result``)
    are built on this.
    """
    import time

    state = ctx.current_workflow.get()
    if state is None or ctx.current_step.get() is not None:
        return (yield from body())
    rt = current_runtime()
    function_id, record = begin_step(rt, state, name)
    if record is not None:
        return replay(rt, record)  # type: ignore[no-any-return]
    started = int(time.time() * 1000)
    try:
        result = yield from body()
    except DBOSWorkflowCancelledError:
        raise
    except Exception as exc:
        yield from record_outcome(
            rt, state, function_id, name, started, None, exc, child_workflow_id
        )
        raise  # record_outcome raised already; kept for type checkers
    final: T = yield from record_outcome(
        rt, state, function_id, name, started, result, None, child_workflow_id
    )
    return final


def step_protocol(
    name: str,
    options: StepOptions,
    func: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Protocol[Any]:
    """A user step: replayed if recorded, else run with its retry policy and recorded."""
    import time

    state = ctx.current_workflow.get()
    parent_step = ctx.current_step.get()
    if state is None or parent_step is not None or ctx.in_transaction.get():
        # Outside a workflow a step is a plain function (still with its retries);
        # inside another step it is simply part of that step.
        return (yield from _attempts(name, options, func, args, kwargs, None, None))
    rt = current_runtime()
    function_id, record = begin_step(rt, state, name)
    if record is not None:
        return replay(rt, record)
    started = int(time.time() * 1000)
    token = ctx.current_step.set(ctx.StepState(name, function_id))
    try:
        attempts = _attempts(name, options, func, args, kwargs, state, rt)
        result = yield from rt.telemetry.step(state, function_id, name, attempts)
    except DBOSWorkflowCancelledError:
        raise
    except DBOSDestroyedError:
        raise
    except Exception as exc:
        error: BaseException | None = exc
        result = None
    else:
        error = None
    finally:
        ctx.current_step.reset(token)
    return (yield from record_outcome(rt, state, function_id, name, started, result, error))


def _attempts(
    name: str,
    options: StepOptions,
    func: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    state: ctx.WorkflowState | None,
    rt: Runtime | None,
) -> Protocol[Any]:
    if not options.retries_allowed:
        return (yield UserCall(func, args, kwargs))
    errors: list[BaseException] = []
    delay = options.interval_seconds
    step_state = ctx.current_step.get()
    for attempt in range(1, options.max_attempts + 1):
        if step_state is not None:
            step_state.attempt = attempt
        try:
            return (yield UserCall(func, args, kwargs))
        except Exception as exc:
            errors.append(exc)
            if attempt == options.max_attempts:
                break
            if rt is not None:
                rt.telemetry.step_retry(name, attempt, exc)
        if state is not None and rt is not None:
            # Back off, but wake at once if the workflow is cancelled meanwhile.
            waiter = rt.notifier.subscribe([cancel_key(state.workflow_id)])
            try:
                yield Wait(waiter, delay)
            finally:
                rt.notifier.unsubscribe(waiter)
            state.check_cancelled()
        else:
            yield Wait(_sleeper(), delay)
        delay *= options.backoff_rate
    raise DBOSMaxStepRetriesExceeded(name, options.max_attempts, errors)


def _sleeper() -> Any:
    from .notifier import Waiter

    return Waiter(())
