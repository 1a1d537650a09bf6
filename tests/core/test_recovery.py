"""Recovery at launch: resume PENDING workflows of this executor and version, safely."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from dbos_core import DBOS, SetWorkflowID
from dbos_core.error import (
    DBOSAwaitedWorkflowMaxRecoveryError,
    DBOSUnexpectedStepError,
)


def _wait_status(workflow_id: str, status: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if DBOS.retrieve_workflow(workflow_id).get_status().status == status:
            return
        time.sleep(0.02)
    raise AssertionError(f"{workflow_id} never became {status}")


def test_destroyed_workflow_is_recovered_on_next_launch(dbos: type[DBOS], relaunch: Any) -> None:
    runs = {"one": 0, "two": 0}
    blocked = threading.Event()
    release = threading.Event()

    @DBOS.step()
    def one() -> int:
        runs["one"] += 1
        return 1

    @DBOS.step()
    def two() -> int:
        runs["two"] += 1
        if not release.is_set():
            blocked.set()
            release.wait(5)
            raise RuntimeError("the process is going away")
        return 2

    @DBOS.workflow()
    def wf() -> int:
        return one() + two()

    with SetWorkflowID("recover-me"):
        DBOS.start_workflow(wf)
    assert blocked.wait(5)
    DBOS.destroy()  # the workflow's next checkpoint is refused: it stays PENDING
    release.set()
    relaunch()
    assert DBOS.retrieve_workflow("recover-me").get_result(timeout=10) == 3
    assert runs == {"one": 1, "two": 2}
    assert DBOS.retrieve_workflow("recover-me").get_status().recovery_attempts == 2


def test_recovery_skips_other_application_versions(dbos_config: dict) -> None:
    gate = threading.Event()

    @DBOS.workflow()
    def parked() -> str:
        gate.wait(5)
        return "done"

    DBOS.destroy()
    DBOS(config={**dbos_config, "application_version": "v1"})  # type: ignore[typeddict-item]
    DBOS.launch()
    with SetWorkflowID("versioned"):
        DBOS.start_workflow(parked)
    time.sleep(0.05)
    DBOS.destroy()
    gate.set()
    DBOS(config={**dbos_config, "application_version": "v2"})  # type: ignore[typeddict-item]
    DBOS.launch()
    try:
        time.sleep(0.2)
        status = DBOS.retrieve_workflow("versioned").get_status()
        assert status.status == "PENDING"
        assert status.app_version == "v1"
    finally:
        DBOS.destroy()
    DBOS(config={**dbos_config, "application_version": "v1"})  # type: ignore[typeddict-item]
    DBOS.launch()
    try:
        assert DBOS.retrieve_workflow("versioned").get_result(timeout=10) == "done"
    finally:
        DBOS.destroy()


def test_nondeterministic_replay_raises_unexpected_step(dbos: type[DBOS], relaunch: Any) -> None:
    choice = {"first": True}
    parked = threading.Event()

    @DBOS.step()
    def step_a() -> str:
        return "a"

    @DBOS.step()
    def step_b() -> str:
        return "b"

    @DBOS.step()
    def park() -> None:
        parked.set()
        time.sleep(0.3)

    @DBOS.workflow()
    def wf() -> str:
        first = step_a() if choice["first"] else step_b()
        park()
        return first

    with SetWorkflowID("nondeterministic"):
        DBOS.start_workflow(wf)
    assert parked.wait(5)
    DBOS.destroy()
    choice["first"] = False
    relaunch()
    with pytest.raises(DBOSUnexpectedStepError, match="deterministic"):
        DBOS.retrieve_workflow("nondeterministic").get_result(timeout=10)


def test_max_recovery_attempts(dbos: type[DBOS], relaunch: Any) -> None:
    parked = threading.Event()
    end_of_test = threading.Event()

    @DBOS.workflow(max_recovery_attempts=2)
    def always_crashes() -> None:
        parked.set()
        end_of_test.wait(30)  # stands for a process that dies here every time

    with SetWorkflowID("poison"):
        DBOS.start_workflow(always_crashes)
    assert parked.wait(5)
    version = DBOS.application_version
    for _ in range(3):
        parked.clear()
        relaunch(application_version=version)
        parked.wait(5)
    # Started once plus two recoveries; the next launch gives up on it.
    relaunch(application_version=version)
    _wait_status("poison", "MAX_RECOVERY_ATTEMPTS_EXCEEDED")
    with pytest.raises(DBOSAwaitedWorkflowMaxRecoveryError):
        DBOS.retrieve_workflow("poison").get_result()
    end_of_test.set()
