"""DBOS.send / DBOS.recv: persisted, per topic, exactly once, async forms, bad input."""

from __future__ import annotations

import threading

import pytest

from dbos_core import DBOS, SetWorkflowID
from dbos_core.error import (
    DBOSException,
    DBOSInvalidStepCallError,
    DBOSNonExistentWorkflowError,
    DBOSSerializationError,
)


def test_send_then_recv_in_order_per_topic(dbos: type[DBOS]) -> None:
    @DBOS.workflow()
    def receiver() -> list[object]:
        got = [DBOS.recv("a", timeout_seconds=5) for _ in range(2)]
        got.append(DBOS.recv(timeout_seconds=5))
        got.append(DBOS.recv("b", timeout_seconds=5))
        return got

    with SetWorkflowID("rx-1"):
        handle = DBOS.start_workflow(receiver)
    DBOS.send("rx-1", "b-message", "b")
    DBOS.send("rx-1", {"n": 1}, "a")
    DBOS.send("rx-1", {"n": 2}, "a")
    DBOS.send("rx-1", "no-topic")
    assert handle.get_result() == [{"n": 1}, {"n": 2}, "no-topic", "b-message"]


def test_recv_waits_for_a_message_sent_later(dbos: type[DBOS]) -> None:
    @DBOS.workflow()
    def receiver() -> object:
        return DBOS.recv("t", timeout_seconds=30)

    handle = DBOS.start_workflow(receiver)
    # Once recv has to wait, it stores its give-up time (a sleep slot after its own).
    wait_for_step(handle.workflow_id, "DBOS.sleep")
    DBOS.send(handle.workflow_id, 42, "t")
    assert handle.get_result() == 42
    assert [s["function_name"] for s in _steps(handle.workflow_id)] == ["DBOS.recv", "DBOS.sleep"]


def test_recv_times_out_with_none_and_replays_none(dbos: type[DBOS]) -> None:
    @DBOS.workflow()
    def receiver() -> object:
        return DBOS.recv("never", timeout_seconds=0.2)

    with SetWorkflowID("rx-timeout"):
        assert receiver() is None
    # A message sent afterwards is not "received" by the finished recv.
    DBOS.send("rx-timeout", "late", "never")
    with SetWorkflowID("rx-timeout"):
        assert receiver() is None


def test_recv_with_zero_timeout_looks_once(dbos: type[DBOS]) -> None:
    @DBOS.workflow()
    def receiver() -> list[object]:
        DBOS.recv("gate", timeout_seconds=10)
        return [DBOS.recv("data", timeout_seconds=0), DBOS.recv("data", timeout_seconds=0)]

    handle = DBOS.start_workflow(receiver)
    DBOS.send(handle.workflow_id, "x", "data")
    DBOS.send(handle.workflow_id, "go", "gate")
    # The first looks and takes the waiting message; the second finds none and does not wait.
    assert handle.get_result() == ["x", None]
    names = [s["function_name"] for s in _steps(handle.workflow_id)]
    assert names[-2:] == ["DBOS.recv", "DBOS.recv"]


def test_send_from_workflow_is_exactly_once(dbos: type[DBOS], relaunch: object) -> None:
    @DBOS.workflow()
    def receiver() -> list[object]:
        return [DBOS.recv(timeout_seconds=5), DBOS.recv(timeout_seconds=0.3)]

    @DBOS.workflow()
    def sender(dest: str) -> None:
        DBOS.send(dest, "once")

    with SetWorkflowID("rx-once"):
        rx = DBOS.start_workflow(receiver)
    with SetWorkflowID("tx-once"):
        sender("rx-once")
    # Run the sender again from its checkpoints (as recovery would): no second message.
    rerun_from_checkpoints("tx-once")
    assert rx.get_result() == ["once", None]
    assert _message_count("rx-once") == 1


def test_send_from_plain_code_is_idempotent_with_workflow_id(dbos: type[DBOS]) -> None:
    @DBOS.workflow()
    def receiver() -> list[object]:
        return [DBOS.recv(timeout_seconds=5), DBOS.recv(timeout_seconds=0.3)]

    handle = DBOS.start_workflow(receiver)
    for _ in range(3):
        with SetWorkflowID("payment-callback-1"):
            DBOS.send(handle.workflow_id, "paid")
    assert handle.get_result() == ["paid", None]
    # Even after it was consumed, the same key does not deliver it again.
    with SetWorkflowID("payment-callback-1"):
        DBOS.send(handle.workflow_id, "paid")
    assert _message_count(handle.workflow_id) == 1


def test_recv_replays_after_message_is_consumed(dbos: type[DBOS]) -> None:
    @DBOS.workflow()
    def receiver() -> object:
        return DBOS.recv(timeout_seconds=5)

    with SetWorkflowID("rx-replay"):
        handle = DBOS.start_workflow(receiver)
    DBOS.send("rx-replay", "only")
    assert handle.get_result() == "only"
    assert rerun_from_checkpoints("rx-replay") == "only"


def test_recv_outside_workflow_is_refused(dbos: type[DBOS]) -> None:
    with pytest.raises(DBOSInvalidStepCallError, match="inside a workflow"):
        DBOS.recv()

    @DBOS.step()
    def bad_step() -> object:
        return DBOS.recv(timeout_seconds=0)

    @DBOS.workflow()
    def wf() -> object:
        return bad_step()

    with pytest.raises(DBOSInvalidStepCallError, match="step"):
        wf()


def test_send_to_unknown_workflow_is_clear_error(dbos: type[DBOS]) -> None:
    with pytest.raises(DBOSNonExistentWorkflowError, match="no-such-workflow"):
        DBOS.send("no-such-workflow", "hello")

    @DBOS.workflow()
    def sender() -> None:
        DBOS.send("no-such-workflow-either", "hello")

    with pytest.raises(DBOSNonExistentWorkflowError):
        sender()

    # The system stays usable.
    @DBOS.workflow()
    def receiver() -> object:
        return DBOS.recv(timeout_seconds=5)

    handle = DBOS.start_workflow(receiver)
    DBOS.send(handle.workflow_id, "fine")
    assert handle.get_result() == "fine"


def test_bad_input_raises_before_writing(dbos: type[DBOS]) -> None:
    @DBOS.workflow()
    def receiver() -> object:
        return DBOS.recv(timeout_seconds=0.3)

    handle = DBOS.start_workflow(receiver)
    with pytest.raises(DBOSSerializationError):
        DBOS.send(handle.workflow_id, threading.Lock())
    with pytest.raises(DBOSException, match="topic"):
        DBOS.send(handle.workflow_id, "x", topic=5)  # type: ignore[arg-type]
    assert handle.get_result() is None
    assert _message_count(handle.workflow_id) == 0

    @DBOS.workflow()
    def negative() -> object:
        return DBOS.recv(timeout_seconds=-1)

    with pytest.raises(DBOSException, match="timeout_seconds"):
        negative()


async def test_async_send_and_recv(dbos: type[DBOS]) -> None:
    @DBOS.workflow()
    async def receiver() -> list[object]:
        first = await DBOS.recv_async("t", timeout_seconds=10)
        second = await DBOS.recv_async("t", timeout_seconds=0.2)
        return [first, second]

    handle = await DBOS.start_workflow_async(receiver)
    await DBOS.send_async(handle.workflow_id, "hi", "t")
    assert await handle.get_result() == ["hi", None]


def rerun_from_checkpoints(workflow_id: str) -> object:
    """Make a finished workflow PENDING again and resume it: it replays its checkpoints."""

    from dbos_core.runtime.global_state import get_runtime
    from dbos_core.storage.schema import workflow_status as ws

    rt = get_runtime()
    with rt.sysdb.db.connect() as conn:
        conn.execute(
            ws.update()
            .where(ws.c.workflow_uuid == workflow_id)
            .values(status="PENDING", output=None, error=None)
        )
    return DBOS.resume_workflow(workflow_id).get_result()


def wait_for_step(workflow_id: str, name: str, timeout: float = 10) -> None:
    import time

    give_up = time.monotonic() + timeout
    while not any(s["function_name"] == name for s in _steps(workflow_id)):
        assert time.monotonic() < give_up, f"{workflow_id} never recorded {name}"
        time.sleep(0.01)


def _message_count(workflow_id: str) -> int:
    import sqlalchemy as sa

    from dbos_core.runtime.global_state import get_runtime
    from dbos_core.storage.schema import notifications

    rt = get_runtime()
    with rt.sysdb.db.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count()).where(notifications.c.destination_uuid == workflow_id)
            ).scalar_one()
        )


def _steps(workflow_id: str) -> list[dict[str, object]]:
    from dbos_core.runtime.global_state import get_runtime

    rt = get_runtime()
    records = rt.sysdb.steps.load(workflow_id)
    return [{"function_name": records[k].function_name} for k in sorted(records)]


def test_writes_of_a_workflow_cancelled_elsewhere_do_not_land(dbos: type[DBOS]) -> None:
    """Cancelled by a direct status change (as another process would): its next
    send, set_event and stream write change nothing, the workflow ends CANCELLED."""

    from dbos_core.error import DBOSAwaitedWorkflowCancelledError
    from dbos_core.runtime.global_state import get_runtime
    from dbos_core.storage.schema import workflow_status as ws

    blocked, release = threading.Event(), threading.Event()

    @DBOS.workflow()
    def target() -> object:
        return DBOS.recv(timeout_seconds=0.5)

    @DBOS.workflow()
    def writer(dest: str, op: str) -> None:
        blocked.set()
        assert release.wait(10)
        if op == "send":
            DBOS.send(dest, "should not land")
        elif op == "event":
            DBOS.set_event("k", "should not land")
        else:
            DBOS.write_stream("s", "should not land")

    rx = DBOS.start_workflow(target)
    for op in ("send", "event", "stream"):
        blocked.clear()
        release.clear()
        handle = DBOS.start_workflow(writer, rx.workflow_id, op)
        assert blocked.wait(10)
        with get_runtime().sysdb.db.connect() as conn:
            conn.execute(
                ws.update()
                .where(ws.c.workflow_uuid == handle.workflow_id)
                .values(status="CANCELLED")
            )
        release.set()
        with pytest.raises(DBOSAwaitedWorkflowCancelledError):
            handle.get_result()
        assert DBOS.get_all_events(handle.workflow_id) == {}
        assert list(DBOS.read_stream(handle.workflow_id, "s")) == []
        assert _steps(handle.workflow_id) == []
    assert rx.get_result() is None
    assert _message_count(rx.workflow_id) == 0


def test_send_in_a_request_leaves_its_idempotency_key_to_the_workflow(dbos: type[DBOS]) -> None:
    from dbos_core.runtime import context as ctx

    @DBOS.workflow()
    def receiver() -> list[object]:
        return [DBOS.recv(timeout_seconds=5), DBOS.recv(timeout_seconds=5)]

    @DBOS.workflow()
    def started_by_request() -> str:
        return "ok"

    rx = DBOS.start_workflow(receiver)
    token = ctx.request_context.set(ctx.RequestContext(idempotency_key="request-key-1"))
    try:
        DBOS.send(rx.workflow_id, "first")
        DBOS.send(rx.workflow_id, "second")
        handle = DBOS.start_workflow(started_by_request)
    finally:
        ctx.request_context.reset(token)
    assert rx.get_result() == ["first", "second"]
    assert handle.workflow_id == "request-key-1"
