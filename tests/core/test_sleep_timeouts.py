"""Durable sleep, SetWorkflowTimeout deadlines, cancel_workflow and resume_workflow."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from dbos_core import DBOS, SetWorkflowID, SetWorkflowTimeout
from dbos_core.error import (
    DBOSAwaitedWorkflowCancelledError,
    DBOSException,
    DBOSNonExistentWorkflowError,
)

from .test_messaging import rerun_from_checkpoints, wait_for_step


def _status(workflow_id: str) -> str:
    return DBOS.retrieve_workflow(workflow_id).get_status().status


def _wait_status(workflow_id: str, wanted: str, timeout: float = 10) -> None:
    give_up = time.monotonic() + timeout
    while _status(workflow_id) != wanted:
        assert time.monotonic() < give_up, f"{workflow_id} is {_status(workflow_id)}, not {wanted}"
        time.sleep(0.01)


def _wait_released(workflow_id: str) -> None:
    """Until the (cancelled) execution in this process has stopped."""
    from dbos_core.runtime.global_state import get_runtime

    rt = get_runtime()
    give_up = time.monotonic() + 10
    while rt.is_active(workflow_id):
        assert time.monotonic() < give_up
        time.sleep(0.01)


def _step_names(workflow_id: str) -> list[str]:
    from dbos_core.runtime.global_state import get_runtime

    records = get_runtime().sysdb.steps.load(workflow_id)
    return [records[k].function_name for k in sorted(records)]


# -- durable sleep -------------------------------------------------------------------


def test_sleep_stores_wake_up_time_and_replays_it(dbos: type[DBOS]) -> None:
    @DBOS.workflow()
    def sleeper() -> float:
        DBOS.sleep(0.2)
        return time.time()

    with SetWorkflowID("sleeper"):
        before = time.time()
        finished = sleeper()
    from dbos_core.runtime.global_state import get_runtime

    rt = get_runtime()
    record = rt.sysdb.steps.load("sleeper")[1]
    assert record.function_name == "DBOS.sleep"
    wake_at = rt.serializer.deserialize(record.output or "")
    assert before + 0.2 <= wake_at <= finished
    # A replay reads the stored wake-up time instead of choosing a new one (that it
    # then wakes at the stored time is shown by the crash test with a real restart).
    rerun_from_checkpoints("sleeper")
    assert rt.sysdb.steps.load("sleeper")[1].output == record.output
    assert _step_names("sleeper") == ["DBOS.sleep"]


def test_sleep_outside_workflow_and_bad_input(dbos: type[DBOS]) -> None:
    DBOS.sleep(0.01)
    DBOS.sleep(0)
    with pytest.raises(DBOSException, match="seconds"):
        DBOS.sleep(-1)
    with pytest.raises(DBOSException, match="seconds"):
        DBOS.sleep(float("nan"))


async def test_sleep_async_in_workflow(dbos: type[DBOS]) -> None:
    @DBOS.workflow()
    async def sleeper() -> str:
        await DBOS.sleep_async(0.05)
        return "awake"

    handle = await DBOS.start_workflow_async(sleeper)
    assert await handle.get_result() == "awake"
    assert _step_names(handle.workflow_id) == ["DBOS.sleep"]


# -- timeouts --------------------------------------------------------------------------


def test_timeout_cancels_workflow_waiting_in_recv(dbos: type[DBOS]) -> None:
    @DBOS.workflow()
    def waiter() -> object:
        return DBOS.recv(timeout_seconds=60)

    with SetWorkflowTimeout(0.3):
        handle = DBOS.start_workflow(waiter)
    with pytest.raises(DBOSAwaitedWorkflowCancelledError, match="cancelled"):
        handle.get_result()
    status = handle.get_status()
    assert status.status == "CANCELLED"
    assert status.workflow_timeout_ms == 300
    assert status.workflow_deadline_epoch_ms is not None


def test_timeout_cancels_running_child_and_parent_ends_cancelled(dbos: type[DBOS]) -> None:
    @DBOS.workflow()
    def child() -> object:
        DBOS.sleep(60)
        return "child finished"

    @DBOS.workflow()
    def parent() -> object:
        handle = DBOS.start_workflow(child)
        return handle.get_result()

    with SetWorkflowID("parent"), SetWorkflowTimeout(0.4):
        handle = DBOS.start_workflow(parent)
    with pytest.raises(DBOSAwaitedWorkflowCancelledError):
        handle.get_result()
    assert _status("parent") == "CANCELLED"
    child_status = DBOS.retrieve_workflow("parent-1").get_status()
    assert child_status.status == "CANCELLED"
    # The child inherited the parent's deadline.
    assert child_status.workflow_deadline_epoch_ms == handle.get_status().workflow_deadline_epoch_ms


def test_timeout_cancels_workflow_stuck_in_a_step_on_time(dbos: type[DBOS]) -> None:
    release = threading.Event()
    after: list[str] = []

    @DBOS.step()
    def stuck() -> None:
        assert release.wait(30)

    @DBOS.step()
    def next_step() -> None:
        after.append("ran")

    @DBOS.workflow()
    def wf() -> None:
        stuck()
        next_step()

    with SetWorkflowTimeout(0.3):
        handle = DBOS.start_workflow(wf)
    # The deadline watch cancels it in the database while the step still runs.
    _wait_status(handle.workflow_id, "CANCELLED")
    release.set()
    with pytest.raises(DBOSAwaitedWorkflowCancelledError):
        handle.get_result()
    assert after == []
    assert _step_names(handle.workflow_id) == []


def test_enqueue_free_child_keeps_its_own_shorter_timeout(dbos: type[DBOS]) -> None:
    @DBOS.workflow()
    def child() -> object:
        return DBOS.recv(timeout_seconds=60)

    @DBOS.workflow()
    def parent() -> str:
        with SetWorkflowTimeout(0.2):
            handle = DBOS.start_workflow(child)
        try:
            handle.get_result()
        except DBOSAwaitedWorkflowCancelledError:
            return "child timed out"
        return "child finished"

    with SetWorkflowID("p2"):
        assert parent() == "child timed out"
    assert _status("p2-1") == "CANCELLED"
    assert _status("p2") == "SUCCESS"


# -- cancel and resume --------------------------------------------------------------------


def test_cancel_preempts_at_next_step_and_resume_continues(dbos: type[DBOS]) -> None:
    release = threading.Event()
    runs: list[str] = []

    @DBOS.step()
    def first() -> None:
        runs.append("first")
        assert release.wait(30)

    @DBOS.step()
    def second() -> None:
        runs.append("second")

    @DBOS.workflow()
    def wf() -> str:
        first()
        second()
        return "done"

    handle = DBOS.start_workflow(wf)
    while runs != ["first"]:
        time.sleep(0.01)
    DBOS.cancel_workflow(handle.workflow_id)
    assert _status(handle.workflow_id) == "CANCELLED"
    release.set()
    with pytest.raises(DBOSAwaitedWorkflowCancelledError, match="cancelled"):
        handle.get_result()
    assert runs == ["first"]
    _wait_released(handle.workflow_id)
    # Resume: the first step's outcome was refused (cancelled), so it runs again, then second.
    resumed = DBOS.resume_workflow(handle.workflow_id)
    assert resumed.get_result() == "done"
    assert runs == ["first", "first", "second"]
    assert _status(handle.workflow_id) == "SUCCESS"


def test_cancel_interrupts_a_wait_and_resume_keeps_completed_steps(dbos: type[DBOS]) -> None:
    runs: list[str] = []

    @DBOS.step()
    def before() -> None:
        runs.append("before")

    @DBOS.workflow()
    def wf() -> object:
        before()
        return DBOS.recv("go", timeout_seconds=60)

    handle = DBOS.start_workflow(wf)
    wait_for_step(handle.workflow_id, "DBOS.sleep")
    DBOS.cancel_workflow(handle.workflow_id)
    with pytest.raises(DBOSAwaitedWorkflowCancelledError):
        handle.get_result()
    DBOS.send(handle.workflow_id, "message", "go")
    assert DBOS.resume_workflow(handle.workflow_id).get_result() == "message"
    assert runs == ["before"]


def test_resume_while_cancelled_execution_is_still_in_a_step(dbos: type[DBOS]) -> None:
    release = threading.Event()
    runs: list[int] = []

    @DBOS.step()
    def slow() -> int:
        runs.append(1)
        if len(runs) == 1:
            assert release.wait(30)
        return len(runs)

    @DBOS.workflow()
    def wf() -> int:
        return slow()

    handle = DBOS.start_workflow(wf)
    while not runs:
        time.sleep(0.01)
    DBOS.cancel_workflow(handle.workflow_id)
    resumed = DBOS.resume_workflow(handle.workflow_id)
    release.set()
    # The old execution records its step (the workflow is PENDING again) and stops;
    # the new one replays that step and finishes.
    assert resumed.get_result() in (1, 2)
    assert _status(handle.workflow_id) == "SUCCESS"


async def test_async_cancel_and_resume(dbos: type[DBOS]) -> None:
    @DBOS.workflow()
    async def wf() -> object:
        return await DBOS.recv_async(timeout_seconds=60)

    handle = await DBOS.start_workflow_async(wf)
    await DBOS.cancel_workflow_async(handle.workflow_id)
    with pytest.raises(DBOSAwaitedWorkflowCancelledError):
        await handle.get_result()
    await DBOS.send_async(handle.workflow_id, "after resume")
    resumed = await DBOS.resume_workflow_async(handle.workflow_id)
    assert await resumed.get_result() == "after resume"


def test_cancel_and_resume_unknown_workflow(dbos: type[DBOS]) -> None:
    with pytest.raises(DBOSNonExistentWorkflowError):
        DBOS.cancel_workflow("missing")
    with pytest.raises(DBOSNonExistentWorkflowError):
        DBOS.resume_workflow("missing")


def test_destroy_during_a_wait_leaves_workflow_pending(dbos: type[DBOS], relaunch: Any) -> None:
    @DBOS.workflow()
    def waiter() -> object:
        return DBOS.recv(timeout_seconds=60)

    with SetWorkflowID("survives-destroy"):
        DBOS.start_workflow(waiter)
    wait_for_step("survives-destroy", "DBOS.sleep")
    relaunch(application_version=DBOS.application_version)
    # Not cancelled by the shutdown: recovered by the new launch, still waiting.
    assert _status("survives-destroy") == "PENDING"
    DBOS.send("survives-destroy", "hello again")
    assert DBOS.retrieve_workflow("survives-destroy").get_result() == "hello again"


async def test_async_workflow_timeout_interrupts_sleep(dbos: type[DBOS]) -> None:
    @DBOS.workflow()
    async def sleeper() -> str:
        await DBOS.sleep_async(60)
        return "woke"

    with SetWorkflowTimeout(0.3):
        handle = await DBOS.start_workflow_async(sleeper)
    with pytest.raises(DBOSAwaitedWorkflowCancelledError):
        await handle.get_result()
    assert (await handle.get_status()).status == "CANCELLED"


def test_timeout_on_a_direct_call(dbos: type[DBOS]) -> None:
    from dbos_core.error import DBOSWorkflowCancelledError

    @DBOS.workflow()
    def sleeper() -> str:
        DBOS.sleep(60)
        return "woke"

    with (
        SetWorkflowID("direct-timeout"),
        SetWorkflowTimeout(0.3),
        pytest.raises(DBOSWorkflowCancelledError),
    ):
        sleeper()
    assert _status("direct-timeout") == "CANCELLED"


def test_bad_timeouts_are_refused(dbos: type[DBOS]) -> None:
    for bad in (0, -1, float("inf"), "10"):
        with pytest.raises(DBOSException, match="SetWorkflowTimeout"):
            SetWorkflowTimeout(bad)  # type: ignore[arg-type]


def test_resume_stops_an_execution_that_missed_its_cancel(dbos: type[DBOS]) -> None:
    """The status was set CANCELLED behind the execution's back (as a cancel landing
    before it began, or from another process): resume restarts it all the same."""
    from dbos_core.runtime.global_state import get_runtime
    from dbos_core.storage.schema import workflow_status as ws

    @DBOS.workflow()
    def waiter() -> object:
        return DBOS.recv("go", timeout_seconds=60)

    handle = DBOS.start_workflow(waiter)
    wait_for_step(handle.workflow_id, "DBOS.sleep")
    with get_runtime().sysdb.db.connect() as conn:
        conn.execute(
            ws.update().where(ws.c.workflow_uuid == handle.workflow_id).values(status="CANCELLED")
        )
    resumed = DBOS.resume_workflow(handle.workflow_id)
    DBOS.send(handle.workflow_id, "hello", "go")
    assert resumed.get_result(timeout=30) == "hello"
    assert _status(handle.workflow_id) == "SUCCESS"
