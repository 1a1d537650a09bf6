"""DBOS classes: instance workflows and steps, recovered on the right instance; steps on plain classes."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from dbos_core import DBOS, DBOSConfiguredInstance, SetWorkflowID
from dbos_core.error import DBOSException

fetch_calls: list[str] = []
gate = threading.Event()
first_done = threading.Event()


@DBOS.dbos_class()
class URLFetcher(DBOSConfiguredInstance):
    def __init__(self, url: str) -> None:
        self.url = url
        super().__init__(config_name=url)

    @DBOS.step()
    def fetch(self, path: str) -> str:
        fetch_calls.append(f"{self.url}{path}")
        return f"<{self.url}{path}>"

    @DBOS.workflow()
    def fetch_workflow(self, path: str) -> str:
        return self.fetch(path)

    @DBOS.workflow()
    def gated_workflow(self, path: str) -> str:
        first = self.fetch(path)
        first_done.set()
        gate.wait(30)
        return first + self.fetch(path + "/again")

    @classmethod
    @DBOS.workflow()
    def class_workflow(cls, x: int) -> str:
        return f"{cls.__name__}:{x}"

    @staticmethod
    @DBOS.step()
    def static_step(x: int) -> int:
        return x + 1


class PlainHelper:
    """Not a DBOS class: its methods can still be steps."""

    def __init__(self, factor: int) -> None:
        self.factor = factor
        self.calls = 0

    @DBOS.step()
    def scale(self, x: int) -> int:
        self.calls += 1
        return x * self.factor

    @staticmethod
    @DBOS.step()
    def negate(x: int) -> int:
        return -x

    @classmethod
    @DBOS.step()
    def describe(cls, x: int) -> str:
        return f"{cls.__name__}({x})"


# Instances are created before launch, as the seeds require.
site_a = URLFetcher("https://a.example")
site_b = URLFetcher("https://b.example")


def test_instance_workflows_run_on_their_instance(dbos: type[DBOS]) -> None:
    fetch_calls.clear()
    with SetWorkflowID("fa"):
        assert site_a.fetch_workflow("/x") == "<https://a.example/x>"
    handle = DBOS.start_workflow(site_b.fetch_workflow, "/y")
    assert handle.get_result() == "<https://b.example/y>"
    status = DBOS.retrieve_workflow("fa").get_status()
    assert (status.class_name, status.config_name) == ("URLFetcher", "https://a.example")
    # The instance is found by its config name, not stored with the inputs.
    assert status.input == {"args": ("/x",), "kwargs": {}}
    assert [s["function_name"] for s in DBOS.list_workflow_steps("fa")] == ["URLFetcher.fetch"]
    with SetWorkflowID("fa"):
        assert site_a.fetch_workflow("/x") == "<https://a.example/x>"
    assert fetch_calls == ["https://a.example/x", "https://b.example/y"]
    assert URLFetcher.class_workflow(3) == "URLFetcher:3"
    assert URLFetcher.static_step(1) == 2


def test_recovery_uses_the_right_instance(dbos: type[DBOS], relaunch: Any) -> None:
    fetch_calls.clear()
    gate.clear()
    first_done.clear()
    with SetWorkflowID("recover-b"):
        handle = DBOS.start_workflow(site_b.gated_workflow, "/p")
    assert first_done.wait(10)
    old_runtime = DBOS._current._runtime  # type: ignore[union-attr]
    DBOS.destroy()  # the workflow is left PENDING at its next step
    gate.set()
    for _ in range(1000):  # let the old execution unwind before the new launch
        if not old_runtime.is_active("recover-b"):
            break
        time.sleep(0.01)
    relaunch()
    result = DBOS.retrieve_workflow(handle.get_workflow_id()).get_result()
    assert result == "<https://b.example/p><https://b.example/p/again>"
    # The first step ran once: recovery replayed it on the same instance.
    assert fetch_calls == ["https://b.example/p", "https://b.example/p/again"]
    status = DBOS.retrieve_workflow("recover-b").get_status()
    assert status.config_name == "https://b.example" and status.recovery_attempts >= 2


def test_steps_on_plain_classes(dbos: type[DBOS]) -> None:
    helper = PlainHelper(3)

    @DBOS.workflow()
    def uses_helper(x: int) -> tuple[int, int, str]:
        return helper.scale(x), PlainHelper.negate(x), PlainHelper.describe(x)

    with SetWorkflowID("plain"):
        assert uses_helper(5) == (15, -5, "PlainHelper(5)")
    with SetWorkflowID("plain"):
        assert uses_helper(5) == (15, -5, "PlainHelper(5)")
    assert helper.calls == 1
    names = [s["function_name"] for s in DBOS.list_workflow_steps("plain")]
    assert names == ["PlainHelper.scale", "PlainHelper.negate", "PlainHelper.describe"]
    assert helper.scale(2) == 6  # outside a workflow a step is a plain call


def test_configured_instance_needs_a_name_and_a_dbos_class(dbos: type[DBOS]) -> None:
    with pytest.raises(DBOSException, match="config_name"):
        URLFetcher("")

    class Undecorated(DBOSConfiguredInstance):
        @DBOS.workflow()
        def run(self) -> int:
            return 1

    instance = Undecorated("u1")
    with pytest.raises(DBOSException, match="dbos_class"):
        instance.run()
    assert DBOS.list_workflows() == []
