"""Workflows and steps: checkpoints, replay, idempotency, errors, async forms."""

from __future__ import annotations

import asyncio
import threading

import pytest

from dbos_core import DBOS, SetWorkflowID, WorkflowHandle
from dbos_core.error import (
    DBOSConflictingRegistrationError,
    DBOSInvalidStepCallError,
    DBOSMaxStepRetriesExceeded,
    DBOSNonExistentWorkflowError,
    DBOSNotLaunchedError,
    DBOSSerializationError,
)


def test_workflow_runs_steps_and_records_status(dbos: type[DBOS]) -> None:
    calls: list[str] = []

    @DBOS.step()
    def add(a: int, b: int) -> int:
        calls.append("add")
        return a + b

    @DBOS.workflow()
    def wf(x: int) -> int:
        assert DBOS.workflow_id is not None
        return add(x, 1) * 10

    handle = DBOS.start_workflow(wf, 4)
    assert handle.get_result() == 50
    status = handle.get_status()
    assert status.status == "SUCCESS"
    assert status.name == wf.__qualname__
    assert status.output == 50
    assert status.input == {"args": (4,), "kwargs": {}}
    assert status.app_version == DBOS.application_version
    assert status.executor_id == "local"
    assert status.created_at is not None and status.updated_at is not None
    assert calls == ["add"]


def test_quickstart_start_attribute_returns_handle(dbos: type[DBOS]) -> None:
    @DBOS.workflow()
    def greet(person_name: str) -> str:
        return f"Hello, {person_name}!"

    handle = greet.start(person_name="World")  # type: ignore[attr-defined]
    assert isinstance(handle, WorkflowHandle)
    assert handle.get_result() == "Hello, World!"


def test_workflow_id_is_idempotency_key(dbos: type[DBOS]) -> None:
    runs: list[int] = []

    @DBOS.step()
    def side_effect(x: int) -> int:
        runs.append(x)
        return x

    @DBOS.workflow()
    def wf(x: int) -> int:
        return side_effect(x)

    with SetWorkflowID("order-1"):
        assert wf(1) == 1
    with SetWorkflowID("order-1"):
        assert wf(1) == 1
    with SetWorkflowID("order-1"):
        assert DBOS.start_workflow(wf, 1).get_result() == 1
    assert runs == [1]


def test_same_id_started_concurrently_runs_once(dbos: type[DBOS]) -> None:
    runs: list[int] = []
    gate = threading.Event()

    @DBOS.step()
    def slow() -> str:
        runs.append(1)
        gate.wait(5)
        return "done"

    @DBOS.workflow()
    def wf() -> str:
        return slow()

    results: list[str] = []

    def call() -> None:
        with SetWorkflowID("same-id"):
            results.append(wf())

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join(10)
    assert results == ["done"] * 4
    assert runs == [1]


def test_set_workflow_id_applies_to_first_workflow_only(dbos: type[DBOS]) -> None:
    @DBOS.workflow()
    def wf() -> str | None:
        return DBOS.workflow_id

    with SetWorkflowID("first"):
        assert wf() == "first"
        second = wf()
    assert second != "first"


def test_workflow_error_is_recorded_and_reraised(dbos: type[DBOS]) -> None:
    @DBOS.workflow()
    def failing() -> None:
        raise ValueError("bad order")

    handle = DBOS.start_workflow(failing)
    with pytest.raises(ValueError, match="bad order"):
        handle.get_result()
    status = handle.get_status()
    assert status.status == "ERROR"
    assert isinstance(status.error, ValueError)
    with SetWorkflowID(handle.workflow_id), pytest.raises(ValueError, match="bad order"):
        failing()


def test_step_error_is_checkpointed(dbos: type[DBOS]) -> None:
    runs: list[int] = []

    @DBOS.step()
    def boom() -> None:
        runs.append(1)
        raise KeyError("missing")

    @DBOS.workflow()
    def wf() -> str:
        try:
            boom()
        except KeyError:
            return "caught"
        return "no"

    with SetWorkflowID("err-wf"):
        assert wf() == "caught"
    steps = DBOS.list_workflow_steps("err-wf") if hasattr(DBOS, "list_workflow_steps") else None
    if steps is not None:
        assert isinstance(steps[0]["error"], KeyError)
    assert runs == [1]


def test_step_retries_then_succeeds(dbos: type[DBOS]) -> None:
    attempts: list[int] = []

    @DBOS.step(retries_allowed=True, interval_seconds=0.01, max_attempts=4, backoff_rate=1.5)
    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("try again")
        return "ok"

    @DBOS.workflow()
    def wf() -> str:
        return flaky()

    assert wf() == "ok"
    assert len(attempts) == 3


def test_step_retries_exhausted(dbos: type[DBOS]) -> None:
    attempts: list[int] = []

    @DBOS.step(retries_allowed=True, interval_seconds=0.01, max_attempts=3)
    def always_fails() -> None:
        attempts.append(1)
        raise ConnectionError("down")

    @DBOS.workflow()
    def wf() -> None:
        always_fails()

    handle = DBOS.start_workflow(wf)
    with pytest.raises(DBOSMaxStepRetriesExceeded) as info:
        handle.get_result()
    assert len(attempts) == 3
    assert info.value.max_attempts == 3
    assert handle.get_status().status == "ERROR"


def test_step_outside_workflow_is_plain_call(dbos: type[DBOS]) -> None:
    @DBOS.step()
    def double(x: int) -> int:
        assert DBOS.workflow_id is None
        return 2 * x

    assert double(21) == 42


def test_step_called_from_step_is_part_of_it(dbos: type[DBOS]) -> None:
    @DBOS.step()
    def inner() -> int:
        return 1

    @DBOS.step()
    def outer() -> int:
        return inner() + inner()

    @DBOS.workflow()
    def wf() -> int:
        return outer()

    with SetWorkflowID("nested-steps"):
        assert wf() == 2
    rt = DBOS._current._runtime  # type: ignore[union-attr]
    recorded = rt.sysdb.steps.load("nested-steps")
    assert [r.function_name for r in recorded.values()] == [outer.__qualname__]


def test_starting_workflow_from_step_is_refused(dbos: type[DBOS]) -> None:
    @DBOS.workflow()
    def child() -> int:
        return 1

    @DBOS.step()
    def bad_step() -> int:
        return DBOS.start_workflow(child).get_result()

    @DBOS.workflow()
    def wf() -> int:
        return bad_step()

    with pytest.raises(DBOSInvalidStepCallError, match="from inside step"):
        wf()


def test_child_workflows_get_deterministic_ids_and_are_steps(dbos: type[DBOS]) -> None:
    @DBOS.workflow()
    def child(x: int) -> int:
        return x * 2

    @DBOS.workflow()
    def parent() -> list[int]:
        direct = child(1)
        handle = DBOS.start_workflow(child, 2)
        return [direct, handle.get_result()]

    with SetWorkflowID("parent-1"):
        assert parent() == [2, 4]
    assert DBOS.retrieve_workflow("parent-1-1").get_result() == 2
    assert DBOS.retrieve_workflow("parent-1-2").get_result() == 4
    rt = DBOS._current._runtime  # type: ignore[union-attr]
    recorded = rt.sysdb.steps.load("parent-1")
    assert recorded[1].child_workflow_id == "parent-1-1"
    assert recorded[2].child_workflow_id == "parent-1-2"
    assert recorded[3].function_name == "DBOS.getResult"
    child_status = DBOS.retrieve_workflow("parent-1-1").get_status()
    assert child_status.parent_workflow_id == "parent-1"


def test_unserializable_argument_raises_before_writing(dbos: type[DBOS]) -> None:
    @DBOS.workflow()
    def wf(arg: object) -> None:
        return None

    with SetWorkflowID("unserializable"), pytest.raises(DBOSSerializationError, match="inputs"):
        wf(threading.Lock())
    with pytest.raises(DBOSNonExistentWorkflowError):
        DBOS.retrieve_workflow("unserializable")
    # The system stays usable.
    assert DBOS.start_workflow(wf, 1).get_result() is None


def test_unserializable_step_output_is_clear_error(dbos: type[DBOS]) -> None:
    @DBOS.step()
    def make_lock() -> object:
        return threading.Lock()

    @DBOS.workflow()
    def wf() -> None:
        make_lock()

    with pytest.raises(DBOSSerializationError, match="output of step"):
        wf()


def test_conflicting_decorators_are_refused(dbos: type[DBOS]) -> None:
    with pytest.raises(DBOSConflictingRegistrationError):

        @DBOS.workflow()
        @DBOS.step()
        def both() -> None:
            return None


def test_conflicting_names_are_refused(dbos: type[DBOS]) -> None:
    @DBOS.workflow(name="shared-name")
    def first() -> None:
        return None

    with pytest.raises(DBOSConflictingRegistrationError, match="shared-name"):

        @DBOS.step(name="shared-name")
        def second() -> None:
            return None


def test_retrieve_unknown_workflow(dbos: type[DBOS]) -> None:
    with pytest.raises(DBOSNonExistentWorkflowError, match="nope"):
        DBOS.retrieve_workflow("nope")


def test_workflow_before_launch_is_clear_error(dbos_config: dict) -> None:
    DBOS.destroy()

    @DBOS.workflow()
    def wf() -> int:
        return 1

    DBOS(config=dbos_config)  # type: ignore[arg-type]
    try:
        with pytest.raises(DBOSNotLaunchedError, match="launch"):
            wf()
    finally:
        DBOS.destroy()


def test_launch_twice_is_harmless(dbos: type[DBOS]) -> None:
    DBOS.launch()

    @DBOS.workflow()
    def wf() -> int:
        return 7

    assert wf() == 7


async def test_async_workflow_and_steps(dbos: type[DBOS]) -> None:
    calls: list[int] = []

    @DBOS.step()
    async def fetch(x: int) -> int:
        await asyncio.sleep(0)
        calls.append(x)
        return x + 1

    @DBOS.workflow()
    async def wf(x: int) -> int:
        a = await fetch(x)
        b = await fetch(a)
        return b

    assert await wf(1) == 3
    handle = await DBOS.start_workflow_async(wf, 10)
    assert await handle.get_result() == 12
    assert (await handle.get_status()).status == "SUCCESS"
    with SetWorkflowID("async-idem"):
        assert await wf(100) == 102
    with SetWorkflowID("async-idem"):
        assert await wf(100) == 102
    assert calls == [1, 2, 10, 11, 100, 101]


def test_async_workflow_started_from_sync_code(dbos: type[DBOS]) -> None:
    @DBOS.workflow()
    async def wf(x: int) -> int:
        await asyncio.sleep(0.01)
        return x * 3

    handle = DBOS.start_workflow(wf, 5)
    assert handle.get_result() == 15


def test_dbos_class_instance_workflows(dbos: type[DBOS]) -> None:
    from dbos_core import DBOSConfiguredInstance

    @DBOS.dbos_class()
    class Greeter(DBOSConfiguredInstance):
        def __init__(self, greeting: str) -> None:
            self.greeting = greeting
            super().__init__(config_name=greeting)

        @DBOS.workflow()
        def greet(self, name: str) -> str:
            return self.shout(name)

        @DBOS.step()
        def shout(self, name: str) -> str:
            return f"{self.greeting}, {name}!"

    hello = Greeter("Hello")
    assert hello.greet("Ann") == "Hello, Ann!"
    handle = DBOS.start_workflow(hello.greet, "Bo")
    assert handle.get_result() == "Hello, Bo!"
    status = handle.get_status()
    assert status.class_name == "test_dbos_class_instance_workflows.<locals>.Greeter"
    assert status.config_name == "Hello"
