"""Workflow management: list with every filter, steps, fork; bad input gives clear errors."""

from __future__ import annotations

import time

import pytest

from dbos_core import DBOS, SetAuthenticatedUser, SetWorkflowID
from dbos_core.error import DBOSException, DBOSNonExistentWorkflowError, DBOSUnknownStepError
from dbos_core.types import ms_to_rfc3339


class ServiceOutage(Exception):
    pass


def test_list_workflows_every_filter(dbos: type[DBOS]) -> None:
    @DBOS.workflow()
    def ok(x: int) -> int:
        return x

    @DBOS.workflow()
    def bad(x: int) -> int:
        raise ValueError(f"bad {x}")

    for i in range(3):
        with SetWorkflowID(f"ok-{i}"):
            ok(i)
    time.sleep(0.01)  # keep ok-2's creation millisecond out of the window below
    before_bad = int(time.time() * 1000)
    time.sleep(0.01)
    with (
        SetWorkflowID("bad-0"),
        SetAuthenticatedUser("alice", ["admin"]),
        pytest.raises(ValueError),
    ):
        bad(0)

    everything = DBOS.list_workflows()
    assert [w.workflow_id for w in everything] == ["ok-0", "ok-1", "ok-2", "bad-0"]
    assert DBOS.list_workflows(sort_desc=True)[0].workflow_id == "bad-0"
    assert [w.workflow_id for w in DBOS.list_workflows(workflow_ids=["ok-1", "bad-0"])] == [
        "ok-1",
        "bad-0",
    ]
    errors = DBOS.list_workflows(status="ERROR")
    assert [w.workflow_id for w in errors] == ["bad-0"]
    assert isinstance(errors[0].error, ValueError)
    assert len(DBOS.list_workflows(status=["ERROR", "SUCCESS"])) == 4
    assert [w.workflow_id for w in DBOS.list_workflows(name=bad.__qualname__)] == ["bad-0"]
    assert [w.workflow_id for w in DBOS.list_workflows(user="alice")] == ["bad-0"]
    assert DBOS.list_workflows(app_version="no-such-version") == []
    assert len(DBOS.list_workflows(app_version=DBOS.application_version)) == 4
    assert [w.workflow_id for w in DBOS.list_workflows(workflow_id_prefix="ok-")] == [
        "ok-0",
        "ok-1",
        "ok-2",
    ]
    assert [w.workflow_id for w in DBOS.list_workflows(limit=2, offset=1)] == ["ok-1", "ok-2"]
    assert [w.workflow_id for w in DBOS.list_workflows(offset=3)] == ["bad-0"]
    window = DBOS.list_workflows(start_time=ms_to_rfc3339(before_bad))
    assert [w.workflow_id for w in window] == ["bad-0"]
    assert [w.workflow_id for w in DBOS.list_workflows(end_time=ms_to_rfc3339(before_bad))] == [
        "ok-0",
        "ok-1",
        "ok-2",
    ]
    lean = DBOS.list_workflows(workflow_ids=["ok-1"], load_input=False, load_output=False)
    assert lean[0].input is None and lean[0].output is None


@pytest.mark.parametrize(
    "filters",
    [
        {"status": "FINISHED"},
        {"status": 3},
        {"start_time": "yesterday"},
        {"end_time": 12345},
        {"limit": -1},
        {"limit": "10"},
        {"offset": 1.5},
        {"workflow_ids": "just-one-id"},
        {"name": 7},
        {"sort_desc": "yes"},
    ],
)
def test_list_workflows_rejects_bad_filters(dbos: type[DBOS], filters: dict[str, object]) -> None:
    with pytest.raises(DBOSException) as info:
        DBOS.list_workflows(**filters)  # type: ignore[arg-type]
    assert info.value.http_status == 400
    assert DBOS.list_workflows() == []  # still usable


def test_list_queued_workflows_filters(dbos: type[DBOS]) -> None:
    from dbos_core.storage.workflows import NewWorkflow

    rt = dbos._current._runtime  # type: ignore[union-attr]
    for i, queue in enumerate(["q1", "q1", "q2"]):
        rt.sysdb.workflows.insert(
            NewWorkflow(
                workflow_id=f"queued-{i}",
                name="some.workflow",
                status="ENQUEUED",
                inputs=rt.serializer.serialize({"args": (), "kwargs": {}}),
                executor_id="local",
                application_version=rt.app_version,
                queue_name=queue,
            )
        )
    assert [w.workflow_id for w in DBOS.list_queued_workflows()] == [
        "queued-0",
        "queued-1",
        "queued-2",
    ]
    assert [w.workflow_id for w in DBOS.list_queued_workflows(queue_name="q2")] == ["queued-2"]
    assert DBOS.list_queued_workflows(status="PENDING") == []
    with pytest.raises(DBOSException, match="SUCCESS"):
        DBOS.list_queued_workflows(status="SUCCESS")


def test_list_workflow_steps_returns_step_info(dbos: type[DBOS]) -> None:
    @DBOS.step()
    def one() -> str:
        return "first"

    @DBOS.step()
    def two() -> None:
        raise ServiceOutage("down")

    @DBOS.workflow()
    def child() -> int:
        return 5

    @DBOS.workflow()
    def parent() -> str:
        h = DBOS.start_workflow(child)
        h.get_result()
        one()
        try:
            two()
        except ServiceOutage:
            pass
        return "done"

    with SetWorkflowID("parent-1"):
        parent()
    steps = DBOS.list_workflow_steps("parent-1")
    assert [s["function_id"] for s in steps] == [1, 2, 3, 4]
    assert steps[0]["function_name"] == child.__qualname__
    assert steps[0]["child_workflow_id"] == "parent-1-1"
    assert steps[1]["function_name"] == "DBOS.getResult"
    assert steps[1]["output"] == 5
    assert steps[2] == {
        "function_id": 3,
        "function_name": one.__qualname__,
        "output": "first",
        "error": None,
        "child_workflow_id": None,
    }
    assert isinstance(steps[3]["error"], ServiceOutage)
    # A WorkflowStatus works as well as an ID (the seeds pass one).
    via_status = DBOS.list_workflow_steps(DBOS.list_workflows(workflow_ids=["parent-1"])[0])  # type: ignore[arg-type]
    assert [s["function_name"] for s in via_status] == [s["function_name"] for s in steps]
    with pytest.raises(DBOSNonExistentWorkflowError):
        DBOS.list_workflow_steps("nope")


def test_fork_copies_steps_before_start_step(dbos: type[DBOS]) -> None:
    runs: dict[str, int] = {"a": 0, "b": 0, "c": 0}
    fail = {"b": True}

    @DBOS.step()
    def a() -> int:
        runs["a"] += 1
        return 1

    @DBOS.step()
    def b() -> int:
        runs["b"] += 1
        if fail["b"]:
            raise ServiceOutage("b is down")
        return 2

    @DBOS.step()
    def c() -> int:
        runs["c"] += 1
        return 3

    @DBOS.workflow()
    def pipeline(x: int) -> int:
        return x + a() + b() + c()

    with SetWorkflowID("orig"), pytest.raises(ServiceOutage):
        pipeline(100)
    assert runs == {"a": 1, "b": 1, "c": 0}
    fail["b"] = False
    with SetWorkflowID("forked"):
        handle = DBOS.fork_workflow("orig", 2)
    assert handle.get_workflow_id() == "forked"
    assert handle.get_result() == 106
    assert runs == {"a": 1, "b": 2, "c": 1}
    status = handle.get_status()
    assert status.forked_from == "orig" and status.status == "SUCCESS"
    assert status.input == {"args": (100,), "kwargs": {}}
    # A fork gets a fresh ID when none is set.
    again = DBOS.fork_workflow("orig", 1)
    assert again.get_workflow_id() not in ("orig", "forked")
    assert again.get_result() == 106
    assert runs == {"a": 2, "b": 3, "c": 2}


def test_fork_bad_input_changes_nothing(dbos: type[DBOS]) -> None:
    @DBOS.step()
    def s() -> int:
        return 1

    @DBOS.workflow()
    def w() -> int:
        return s() + s()

    with SetWorkflowID("w1"):
        w()
    with pytest.raises(DBOSUnknownStepError, match="between 1 and 3"):
        DBOS.fork_workflow("w1", 4)
    with pytest.raises(DBOSException, match="positive integer"):
        DBOS.fork_workflow("w1", 0)
    with pytest.raises(DBOSNonExistentWorkflowError):
        DBOS.fork_workflow("missing", 1)
    with SetWorkflowID("w1"), pytest.raises(DBOSException, match="exists"):
        DBOS.fork_workflow("w1", 1)
    assert [x.workflow_id for x in DBOS.list_workflows()] == ["w1"]


def test_fork_to_other_version_waits_on_internal_queue(dbos: type[DBOS]) -> None:
    from dbos_core.storage.management import INTERNAL_QUEUE_NAME

    @DBOS.workflow()
    def w() -> int:
        return 1

    with SetWorkflowID("w-v"):
        w()
    with SetWorkflowID("w-v2"):
        DBOS.fork_workflow("w-v", 1, application_version="v2")
    status = DBOS.retrieve_workflow("w-v2").get_status()
    assert (status.status, status.queue_name, status.app_version) == (
        "ENQUEUED",
        INTERNAL_QUEUE_NAME,
        "v2",
    )


async def test_async_management(dbos: type[DBOS]) -> None:
    @DBOS.workflow()
    async def aw(x: int) -> int:
        return x * 2

    with SetWorkflowID("aw-1"):
        assert await aw(4) == 8
    found = await DBOS.list_workflows_async(workflow_ids=["aw-1"])
    assert found[0].output == 8
    assert await DBOS.list_workflow_steps_async("aw-1") == []
    with SetWorkflowID("aw-2"):
        handle = await DBOS.fork_workflow_async("aw-1", 1)
    assert await handle.get_result() == 8


def test_management_calls_inside_a_workflow_are_steps(dbos: type[DBOS]) -> None:
    @DBOS.workflow()
    def other() -> int:
        return 1

    @DBOS.workflow()
    def inspector() -> list[str]:
        return [w.workflow_id for w in DBOS.list_workflows(workflow_id_prefix="other")]

    with SetWorkflowID("other-1"):
        other()
    with SetWorkflowID("inspect"):
        assert inspector() == ["other-1"]
    with SetWorkflowID("other-2"):
        other()
    steps = DBOS.list_workflow_steps("inspect")
    assert [s["function_name"] for s in steps] == ["DBOS.listWorkflows"]
    assert steps[0]["output"][0].workflow_id == "other-1"
    # A fork from step 2 replays step 1 from its checkpoint: the same answer, though
    # the database has changed since; a fork from step 1 asks the database again.
    assert DBOS.fork_workflow("inspect", 2).get_result() == ["other-1"]
    assert DBOS.fork_workflow("inspect", 1).get_result() == ["other-1", "other-2"]
