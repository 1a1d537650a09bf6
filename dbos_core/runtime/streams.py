"""Workflow streams: append from a workflow (exactly once) or a step (at least once), read anywhere.

Reading is one protocol, ``next_batch``, that returns the values available after
an offset (waiting for some when there are none); the sync and async readers are
thin loops around it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..error import DBOSInvalidStepCallError, DBOSNonExistentWorkflowError
from ..serialization import deserialize_value, serialize_value
from ..types import TERMINAL_STATUSES
from . import context as ctx
from .effects import Blocking, Protocol, Wait, run_async, run_sync
from .messaging import _require_str, workflow_step_state, write_step
from .notifier import Waiter, stream_key, workflow_key
from .runtime import Runtime
from .steps import current_runtime

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

WRITE_STREAM = "DBOS.writeStream"
CLOSE_STREAM = "DBOS.closeStream"

# A workflow's own write may race a concurrent writer (one of its steps) on PostgreSQL.
_WRITE_ATTEMPTS = 20


def _append_protocol(key: Any, text: str | None, operation: str) -> Protocol[None]:
    from ..storage.streams import CLOSED_MARKER

    name = _require_str(key, f"{operation}: key")
    current = ctx.current_workflow.get()
    if current is None:
        raise DBOSInvalidStepCallError(
            f"DBOS.{operation} must be called from inside a workflow or one of its steps"
        )
    rt = current_runtime()
    wid = current.workflow_id
    value = CLOSED_MARKER if text is None else text
    state = workflow_step_state()
    if state is None:
        yield Blocking(lambda: rt.sysdb.streams.append(wid, name, value))
    else:

        def work(conn: Connection, _function_id: int) -> None:
            rt.sysdb.streams.append_in(conn, wid, name, value)

        def chained(checkpoint: Any, _function_id: int) -> Any:
            return rt.sysdb.streams.append_after(checkpoint, wid, name, value)

        step_name = WRITE_STREAM if text is not None else CLOSE_STREAM
        yield from _write_with_retry(rt, state, step_name, work, chained)
    rt.notifier.notify(stream_key(wid, name))


def _write_with_retry(
    rt: Runtime, state: ctx.WorkflowState, name: str, work: Any, chained: Any
) -> Protocol[None]:
    import sqlalchemy as sa

    from ..storage.database import is_unique_violation

    for attempt in range(_WRITE_ATTEMPTS):
        saved = state.peek_function_id()
        try:
            yield from write_step(rt, state, name, work, chained)
            return
        except sa.exc.IntegrityError as exc:
            # The offset was taken by a concurrent writer: take the same step slot again.
            if not is_unique_violation(exc) or attempt == _WRITE_ATTEMPTS - 1:
                raise
            state._next_function_id = saved


def write_stream_protocol(key: Any, value: Any) -> Protocol[None]:
    rt = current_runtime()
    text = serialize_value(rt.serializer, value, f"value written to stream {key!r}")
    yield from _append_protocol(key, text, "write_stream")


def close_stream_protocol(key: Any) -> Protocol[None]:
    yield from _append_protocol(key, None, "close_stream")


@dataclass
class StreamCursor:
    workflow_id: str
    key: str
    offset: int = 0
    done: bool = False
    waiter: Waiter | None = field(default=None, repr=False)


def next_batch(rt: Runtime, cursor: StreamCursor) -> Protocol[list[Any]]:
    """The next values of the stream (at least one unless it has ended); waits for them."""
    from ..storage.streams import CLOSED_MARKER

    assert cursor.waiter is not None
    while True:
        # Status first: any value written before the workflow ended is then seen below.
        row = yield Blocking(lambda: rt.sysdb.workflows.get_outcome_row(cursor.workflow_id))
        if row is None:
            raise DBOSNonExistentWorkflowError(cursor.workflow_id, "cannot read its stream")
        rows = yield Blocking(
            lambda: rt.sysdb.streams.read_from(cursor.workflow_id, cursor.key, cursor.offset)
        )
        values: list[Any] = []
        for offset, text in rows:
            if text == CLOSED_MARKER:
                cursor.done = True
                break
            values.append(
                deserialize_value(rt.serializer, text, f"stream {cursor.key!r} value {offset}")
            )
            cursor.offset = offset + 1
        if values or cursor.done:
            return values
        if row[0] in TERMINAL_STATUSES:
            # Streams close themselves when their workflow ends.
            cursor.done = True
            return values
        if rt.stopped:
            cursor.done = True
            return values
        yield Wait(cursor.waiter, rt.poll_interval)


def _open(workflow_id: Any, key: Any) -> tuple[Runtime, StreamCursor]:
    wid = _require_str(workflow_id, "read_stream: workflow_id")
    name = _require_str(key, "read_stream: key")
    rt = current_runtime()
    cursor = StreamCursor(wid, name)
    cursor.waiter = rt.notifier.subscribe([stream_key(wid, name), workflow_key(wid)])
    return rt, cursor


def read_stream(workflow_id: Any, key: Any) -> Iterator[Any]:
    rt, cursor = _open(workflow_id, key)
    assert cursor.waiter is not None
    try:
        while not cursor.done:
            yield from run_sync(next_batch(rt, cursor))
    finally:
        rt.notifier.unsubscribe(cursor.waiter)


async def read_stream_async(workflow_id: Any, key: Any) -> AsyncIterator[Any]:
    rt, cursor = _open(workflow_id, key)
    assert cursor.waiter is not None
    try:
        while not cursor.done:
            for value in await run_async(next_batch(rt, cursor)):
                yield value
    finally:
        rt.notifier.unsubscribe(cursor.waiter)
