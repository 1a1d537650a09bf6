"""The admin server, exercised over real HTTP like an operator would."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dbos_core import DBOS, DBOSConfig, SetWorkflowID

TOKEN = "s3cret-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def admin(dbos_config: DBOSConfig) -> Iterator[httpx.Client]:
    port = free_port()
    DBOS.destroy()
    DBOS(config={**dbos_config, "run_admin_server": True, "admin_port": port, "admin_token": TOKEN})
    DBOS.launch()
    client = httpx.Client(
        base_url=f"http://127.0.0.1:{port}",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=30,
    )
    yield client
    client.close()
    DBOS.destroy()


def test_health_and_token(admin: httpx.Client) -> None:
    base = str(admin.base_url)
    assert httpx.get(f"{base}/health").json() == {"status": "healthy"}
    refused = httpx.get(f"{base}/workflows")
    assert refused.status_code == 401 and refused.json()["error"] == "UNAUTHORIZED"
    wrong = httpx.get(f"{base}/workflows", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert admin.get("/workflows").json() == []


def test_list_get_steps_and_bad_input(admin: httpx.Client) -> None:
    @DBOS.step()
    def double(x: int) -> int:
        return 2 * x

    @DBOS.workflow()
    def work(x: int) -> int:
        return double(x) + double(x + 1)

    @DBOS.workflow()
    def broken() -> None:
        raise RuntimeError("broken")

    for i in range(3):
        with SetWorkflowID(f"work-{i}"):
            work(i)
    with SetWorkflowID("broken-1"), pytest.raises(RuntimeError):
        broken()

    listed = admin.get("/workflows").json()
    assert [w["workflow_id"] for w in listed] == ["work-0", "work-1", "work-2", "broken-1"]
    assert listed[0]["created_at"].endswith("Z")
    errors = admin.get("/workflows", params={"status": "ERROR"}).json()
    assert [w["workflow_id"] for w in errors] == ["broken-1"]
    assert "broken" in errors[0]["error"]
    page = admin.get("/workflows", params={"limit": 1, "offset": 1, "sort_desc": "true"}).json()
    assert [w["workflow_id"] for w in page] == ["work-2"]
    posted = admin.post("/workflows", json={"workflow_id_prefix": "work-", "limit": 2}).json()
    assert [w["workflow_id"] for w in posted] == ["work-0", "work-1"]
    one = admin.get("/workflows/work-1").json()
    assert one["status"] == "SUCCESS" and one["output"] == "6"
    steps = admin.get("/workflows/work-1/steps").json()
    assert [(s["function_id"], s["output"]) for s in steps] == [(1, "2"), (2, "4")]

    def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/json"
        body: dict[str, Any] = response.json()
        assert body["message"]
        return body

    assert error_of(admin.get("/workflows/nope"), 404)["error"] == "NONEXISTENT_WORKFLOW"
    error_of(admin.get("/workflows/nope/steps"), 404)
    error_of(admin.get("/workflows", params={"status": "DONE"}), 400)
    error_of(admin.get("/workflows", params={"limit": "ten"}), 400)
    error_of(admin.get("/workflows", params={"start_time": "yesterday"}), 400)
    error_of(admin.get("/workflows", params={"colour": "red"}), 400)
    error_of(admin.post("/workflows", json=["not", "an", "object"]), 400)
    error_of(admin.post("/workflows", json={"limit": "x"}), 400)
    error_of(
        admin.post(
            "/workflows", content=b"{not json", headers={"Content-Type": "application/json"}
        ),
        400,
    )
    error_of(admin.get("/no/such/route"), 404)
    error_of(admin.delete("/workflows/work-1"), 405)
    error_of(admin.get("/workflows/work-1/cancel"), 405)
    error_of(admin.post("/workflows/work-1/fork", json={"start_step": 9}), 400)
    error_of(admin.post("/workflows/work-1/fork", json={}), 400)
    error_of(admin.post("/workflows/work-1/fork", json={"start_step": "2"}), 400)
    error_of(admin.post("/workflows/nope/fork", json={"start_step": 1}), 404)
    error_of(admin.post("/workflows/nope/cancel"), 404)
    # Nothing changed.
    assert len(admin.get("/workflows").json()) == 4


def test_cancel_resume_fork_and_queues(admin: httpx.Client) -> None:
    gate = threading.Event()
    runs: list[str] = []

    @DBOS.step()
    def first() -> str:
        runs.append("first")
        return "a"

    @DBOS.step()
    def second() -> str:
        runs.append("second")
        return "b"

    @DBOS.workflow()
    def gated() -> str:
        out = first()
        gate.wait(30)
        return out + second()

    with SetWorkflowID("gated-1"):
        handle = DBOS.start_workflow(gated)
    cancelled = admin.post("/workflows/gated-1/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "CANCELLED"
    gate.set()
    with pytest.raises(Exception, match="cancelled"):
        handle.get_result()
    assert runs == ["first"]
    # The cancelled execution unwinds at its next step; resume once it has let go.
    # (Resuming while it still unwinds is a no-op in runtime/management.py today.)
    rt = DBOS._current._runtime  # type: ignore[union-attr]
    for _ in range(1000):
        if not rt.is_active("gated-1"):
            break
        time.sleep(0.01)
    resumed = admin.post("/workflows/gated-1/resume")
    assert resumed.status_code == 200
    assert handle.get_result() == "ab"
    assert runs == ["first", "second"]

    forked = admin.post(
        "/workflows/gated-1/fork", json={"start_step": 2, "new_workflow_id": "gated-fork"}
    )
    assert forked.json() == {"workflow_id": "gated-fork"}
    assert DBOS.retrieve_workflow("gated-fork").get_result() == "ab"
    assert runs == ["first", "second", "second"]

    from dbos_core.storage.workflows import NewWorkflow

    rt.sysdb.workflows.insert(
        NewWorkflow(
            "q-1",
            "some.wf",
            "ENQUEUED",
            rt.serializer.serialize({"args": (), "kwargs": {}}),
            "local",
            rt.app_version,
            queue_name="emails",
        )
    )
    assert admin.get("/queues").json() == [{"queue_name": "emails", "ENQUEUED": 1, "PENDING": 0}]
    queued = admin.get("/queues/workflows", params={"queue_name": "emails"}).json()
    assert [w["workflow_id"] for w in queued] == ["q-1"]


def test_admin_server_is_off_by_default_and_binds_localhost(dbos_config: DBOSConfig) -> None:
    from dbos_core.config import resolve_config

    resolved = resolve_config({**dbos_config})
    assert resolved.run_admin_server is False and resolved.admin_host == "127.0.0.1"
    port = free_port()
    DBOS.destroy()
    DBOS(config={**dbos_config, "run_admin_server": True, "admin_port": port})
    DBOS.launch()
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/workflows").json() == []  # no token set
    finally:
        DBOS.destroy()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/health")
