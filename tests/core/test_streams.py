"""Workflow streams: ordered values, close, end with the workflow, exactly once, async."""

from __future__ import annotations

import threading

import pytest

from dbos_core import DBOS, SetWorkflowID
from dbos_core.error import DBOSInvalidStepCallError, DBOSNonExistentWorkflowError

from .test_messaging import rerun_from_checkpoints


def test_stream_values_in_order_until_closed(dbos: type[DBOS]) -> None:
    release = threading.Event()

    @DBOS.step()
    def wait_for_reader() -> None:
        assert release.wait(10)

    @DBOS.workflow()
    def producer() -> str:
        DBOS.write_stream("out", {"step": 1})
        wait_for_reader()
        DBOS.write_stream("out", {"step": 2})
        DBOS.write_stream("other", "elsewhere")
        DBOS.close_stream("out")
        return "done"

    handle = DBOS.start_workflow(producer)
    reader = DBOS.read_stream(handle.workflow_id, "out")
    assert next(reader) == {"step": 1}
    # The reader now waits for the next value, written after this.
    release.set()
    assert list(reader) == [{"step": 2}]
    assert handle.get_result() == "done"
    assert list(DBOS.read_stream(handle.workflow_id, "other")) == ["elsewhere"]


def test_stream_ends_when_workflow_ends(dbos: type[DBOS]) -> None:
    @DBOS.workflow()
    def producer() -> None:
        for i in range(3):
            DBOS.write_stream("numbers", i)
        raise ValueError("boom")

    handle = DBOS.start_workflow(producer)
    assert list(DBOS.read_stream(handle.workflow_id, "numbers")) == [0, 1, 2]
    with pytest.raises(ValueError):
        handle.get_result()
    assert list(DBOS.read_stream(handle.workflow_id, "never-written")) == []


def test_writes_from_steps_and_exactly_once_from_workflow(dbos: type[DBOS]) -> None:
    attempts: list[int] = []

    @DBOS.step(retries_allowed=True, max_attempts=2, interval_seconds=0)
    def flaky() -> None:
        attempts.append(1)
        DBOS.write_stream("log", f"try {len(attempts)}")
        if len(attempts) == 1:
            raise RuntimeError("first try fails")

    @DBOS.workflow()
    def producer() -> None:
        DBOS.write_stream("log", "start")
        flaky()
        DBOS.close_stream("log")

    with SetWorkflowID("producer-1"):
        producer()
    expected = ["start", "try 1", "try 2"]
    assert list(DBOS.read_stream("producer-1", "log")) == expected
    # Replaying the workflow writes nothing again (its writes and the step are checkpointed).
    rerun_from_checkpoints("producer-1")
    assert list(DBOS.read_stream("producer-1", "log")) == expected
    assert len(attempts) == 2


def test_stream_bad_input(dbos: type[DBOS]) -> None:
    with pytest.raises(DBOSInvalidStepCallError, match="write_stream"):
        DBOS.write_stream("k", 1)
    with pytest.raises(DBOSInvalidStepCallError, match="close_stream"):
        DBOS.close_stream("k")
    with pytest.raises(DBOSNonExistentWorkflowError):
        list(DBOS.read_stream("no-such-workflow", "k"))


async def test_async_streams(dbos: type[DBOS]) -> None:
    @DBOS.workflow()
    async def producer() -> None:
        for i in range(3):
            await DBOS.write_stream_async("s", i)
        await DBOS.close_stream_async("s")

    handle = await DBOS.start_workflow_async(producer)
    values = [v async for v in DBOS.read_stream_async(handle.workflow_id, "s")]
    assert values == [0, 1, 2]
    await handle.get_result()
