"""DBOS.set_event / get_event / get_all_events: waits, updates, checkpointed reads, async."""

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

from .test_messaging import rerun_from_checkpoints


def test_get_event_waits_for_the_workflow_to_publish(dbos: type[DBOS]) -> None:
    release = threading.Event()

    @DBOS.step()
    def blocked() -> None:
        assert release.wait(10)

    @DBOS.workflow()
    def publisher() -> str:
        DBOS.set_event("progress", "started")
        blocked()
        DBOS.set_event("progress", "done")
        DBOS.set_event("payment_id", {"id": 7})
        return "ok"

    handle = DBOS.start_workflow(publisher)
    assert DBOS.get_event(handle.workflow_id, "progress", timeout_seconds=10) == "started"
    release.set()
    assert DBOS.get_event(handle.workflow_id, "payment_id", timeout_seconds=10) == {"id": 7}
    assert handle.get_result() == "ok"
    assert DBOS.get_event(handle.workflow_id, "progress") == "done"
    assert DBOS.get_all_events(handle.workflow_id) == {
        "payment_id": {"id": 7},
        "progress": "done",
    }


def test_get_event_times_out_with_none(dbos: type[DBOS]) -> None:
    @DBOS.workflow()
    def quiet() -> None:
        return None

    handle = DBOS.start_workflow(quiet)
    handle.get_result()
    assert DBOS.get_event(handle.workflow_id, "never", timeout_seconds=0.2) is None
    assert DBOS.get_event(handle.workflow_id, "never", timeout_seconds=0) is None
    assert DBOS.get_all_events(handle.workflow_id) == {}


def test_set_event_from_a_step(dbos: type[DBOS]) -> None:
    @DBOS.step()
    def report() -> None:
        DBOS.set_event("from_step", 3)

    @DBOS.workflow()
    def wf() -> None:
        report()

    handle = DBOS.start_workflow(wf)
    handle.get_result()
    assert DBOS.get_event(handle.workflow_id, "from_step", timeout_seconds=5) == 3


def test_get_event_in_workflow_is_checkpointed(dbos: type[DBOS]) -> None:
    @DBOS.workflow()
    def publisher() -> None:
        DBOS.set_event("k", "first")

    @DBOS.workflow()
    def reader(target: str) -> object:
        return DBOS.get_event(target, "k", timeout_seconds=5)

    with SetWorkflowID("pub"):
        publisher()
    with SetWorkflowID("reader"):
        assert reader("pub") == "first"
    # The event changes; a replay of the reader still sees the value it read.
    from dbos_core.runtime.global_state import get_runtime

    get_runtime().sysdb.messages.set_event("pub", "k", get_runtime().serializer.serialize("second"))
    assert DBOS.get_event("pub", "k") == "second"
    assert rerun_from_checkpoints("reader") == "first"


def test_set_event_in_workflow_happens_once(dbos: type[DBOS]) -> None:
    @DBOS.workflow()
    def publisher() -> None:
        DBOS.set_event("k", 1)
        DBOS.set_event("k", 2)

    with SetWorkflowID("pub-once"):
        publisher()
    from dbos_core.runtime.global_state import get_runtime

    records = get_runtime().sysdb.steps.load("pub-once")
    assert [records[i].function_name for i in sorted(records)] == ["DBOS.setEvent"] * 2
    assert rerun_from_checkpoints("pub-once") is None
    assert DBOS.get_event("pub-once", "k") == 2


def test_event_bad_input(dbos: type[DBOS]) -> None:
    with pytest.raises(DBOSInvalidStepCallError, match="set_event"):
        DBOS.set_event("k", 1)
    with pytest.raises(DBOSNonExistentWorkflowError):
        DBOS.get_event("no-such-workflow", "k", timeout_seconds=1)
    with pytest.raises(DBOSNonExistentWorkflowError):
        DBOS.get_all_events("no-such-workflow")

    @DBOS.workflow()
    def wf() -> None:
        DBOS.set_event("lock", threading.Lock())

    with SetWorkflowID("bad-event"), pytest.raises(DBOSSerializationError):
        wf()
    assert DBOS.get_all_events("bad-event") == {}
    with pytest.raises(DBOSException, match="timeout_seconds"):
        DBOS.get_event("bad-event", "k", timeout_seconds=-0.5)
    with pytest.raises(DBOSException, match="key"):
        DBOS.get_event("bad-event", 7, timeout_seconds=1)  # type: ignore[arg-type]


async def test_async_events(dbos: type[DBOS]) -> None:
    @DBOS.workflow()
    async def publisher() -> None:
        await DBOS.set_event_async("greeting", "hello")
        await DBOS.sleep_async(0.05)
        await DBOS.set_event_async("later", "world")

    handle = await DBOS.start_workflow_async(publisher)
    assert await DBOS.get_event_async(handle.workflow_id, "later", timeout_seconds=10) == "world"
    await handle.get_result()
    assert await DBOS.get_all_events_async(handle.workflow_id) == {
        "greeting": "hello",
        "later": "world",
    }


def test_get_event_of_unknown_workflow_in_a_workflow_is_checkpointed(dbos: type[DBOS]) -> None:
    @DBOS.workflow()
    def reader() -> object:
        try:
            return DBOS.get_event("not-yet", "k", timeout_seconds=1)
        except DBOSNonExistentWorkflowError:
            return "missing"

    @DBOS.workflow()
    def late() -> None:
        DBOS.set_event("k", "now it exists")

    with SetWorkflowID("reader-missing"):
        assert reader() == "missing"
    with SetWorkflowID("not-yet"):
        late()
    # The replay sees what the first execution saw.
    assert rerun_from_checkpoints("reader-missing") == "missing"
