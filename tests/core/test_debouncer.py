"""Debouncing: the last inputs win, the delay restarts, the timeout caps it."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from dbos_core import DBOS, Debouncer, Queue, SetWorkflowID
from dbos_core.error import DBOSException


def test_last_inputs_win_and_workflow_runs_once(dbos: type[DBOS]) -> None:
    runs: list[str] = []

    @DBOS.workflow()
    def process(text: str) -> str:
        runs.append(text)
        return text.upper()

    debouncer = Debouncer.create(process)
    # A long period, so the three calls surely land before the start.
    first = debouncer.debounce("user-1", 1.0, "a")
    second = debouncer.debounce("user-1", 1.0, "ab")
    third = debouncer.debounce("user-1", 1.0, "abc")
    assert first.get_workflow_id() == second.get_workflow_id() == third.get_workflow_id()
    assert first.get_status().status == "ENQUEUED"
    assert first.get_result() == "ABC"
    assert runs == ["abc"]
    # Once it started, the next call debounces a new execution.
    again = debouncer.debounce("user-1", 0.05, "z")
    assert again.get_workflow_id() != first.get_workflow_id()
    assert again.get_result() == "Z"
    assert runs == ["abc", "z"]


def test_keys_are_debounced_separately(dbos: type[DBOS]) -> None:
    @DBOS.workflow()
    def process(text: str) -> str:
        return text

    debouncer = Debouncer.create(process)
    a = debouncer.debounce("a", 0.1, "for a")
    b = debouncer.debounce("b", 0.1, "for b")
    assert a.get_workflow_id() != b.get_workflow_id()
    assert (a.get_result(), b.get_result()) == ("for a", "for b")


def test_each_call_pushes_the_start_back(dbos: type[DBOS]) -> None:
    started = threading.Event()

    @DBOS.workflow()
    def process(n: int) -> int:
        started.set()
        return n

    debouncer = Debouncer.create(process)
    handle = debouncer.debounce("k", 0.6, 0)
    for n in range(1, 5):
        time.sleep(0.1)  # far less than the period: the start keeps moving
        assert not started.is_set()
        debouncer.debounce("k", 0.6, n)
    assert handle.get_result() == 4
    status = handle.get_status()
    assert status.dequeued_at is not None and status.created_at is not None
    # Four pushes of 0.1 s, then a full period: at least 1 s after the first call.
    assert status.dequeued_at - status.created_at >= 1000


def test_timeout_caps_the_delay(dbos: type[DBOS]) -> None:
    @DBOS.workflow()
    def process(n: int) -> int:
        return n

    debouncer = Debouncer.create(process, debounce_timeout_sec=0.3)
    handle = debouncer.debounce("k", 0.2, 0)
    deadline = time.monotonic() + 10
    n = 0
    # Keep calling faster than the period: only the timeout can start it.
    while handle.get_status().status == "ENQUEUED" and time.monotonic() < deadline:
        n += 1
        later = debouncer.debounce("k", 0.2, n)
        time.sleep(0.05)
    assert handle.get_status().status in ("PENDING", "SUCCESS")
    result = handle.get_result()
    assert 0 <= result <= n
    # The last call's input always runs: in the capped workflow, or in the next one.
    if later.get_workflow_id() == handle.get_workflow_id():
        assert result == n
    else:
        assert later.get_result() == n


def test_debounced_workflow_runs_on_given_queue(dbos: type[DBOS]) -> None:
    queue = Queue(f"debounce-{uuid.uuid4().hex[:6]}", worker_concurrency=1)

    @DBOS.workflow()
    def process(n: int) -> int:
        return n * 10

    debouncer = Debouncer.create(process, queue=queue)
    handle = debouncer.debounce("k", 0.05, 7)
    assert handle.get_result() == 70
    assert handle.get_status().queue_name == queue.name


async def test_async_debounce(dbos: type[DBOS]) -> None:
    @DBOS.workflow()
    async def process(text: str) -> str:
        return text + "!"

    debouncer = Debouncer.create_async(process)
    await debouncer.debounce_async("k", 0.2, "one")
    handle = await debouncer.debounce_async("k", 0.2, "two")
    assert await handle.get_result() == "two!"


def test_debounce_from_workflow_replays_same_target(dbos: type[DBOS]) -> None:
    @DBOS.workflow()
    def process(n: int) -> int:
        return n + 1

    debouncer = Debouncer.create(process)

    @DBOS.workflow()
    def parent() -> str:
        return debouncer.debounce("from-parent", 0.05, 1).get_workflow_id()

    with SetWorkflowID("debounce-parent"):
        target = parent()
    assert DBOS.retrieve_workflow(target).get_result() == 2
    with SetWorkflowID("debounce-parent"):
        assert parent() == target


def test_debounced_workflow_survives_restart(dbos: type[DBOS], relaunch: object) -> None:
    # Workflows declared after launch change the computed version: pin it across launches.
    relaunch(application_version="debounce-v1")  # type: ignore[operator]
    runs: list[int] = []

    @DBOS.workflow()
    def process(n: int) -> int:
        runs.append(n)
        return n

    debouncer = Debouncer.create(process)
    handle = debouncer.debounce("k", 0.5, 3)
    relaunch(application_version="debounce-v1")  # type: ignore[operator]
    assert DBOS.retrieve_workflow(handle.get_workflow_id()).get_result(timeout=30) == 3
    assert runs == [3]


def test_bad_debounce_arguments(dbos: type[DBOS]) -> None:
    @DBOS.workflow()
    def process(n: int) -> int:
        return n

    @DBOS.step()
    def a_step() -> None:
        pass

    with pytest.raises(DBOSException, match="workflow"):
        Debouncer.create(a_step)
    with pytest.raises(DBOSException, match="debounce_timeout_sec"):
        Debouncer.create(process, debounce_timeout_sec=-1)
    debouncer = Debouncer.create(process)
    with pytest.raises(DBOSException, match="debounce_period_sec"):
        debouncer.debounce("k", -5, 1)
    with pytest.raises(DBOSException, match="debounce_key"):
        debouncer.debounce("", 1, 1)
