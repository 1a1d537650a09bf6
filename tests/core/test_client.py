"""DBOSClient: storage and serialization only, usable from another process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dbos_core import DBOS, DBOSClient, EnqueueOptions, SetWorkflowID
from dbos_core.error import (
    DBOSException,
    DBOSInitializationError,
    DBOSNonExistentWorkflowError,
    DBOSQueueDeduplicatedError,
)
from dbos_core.types import ms_to_rfc3339
from tests.conftest import BACKEND, make_database_url
from tests.core.scenario_helpers import ServiceOutage

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def client(dbos: type[DBOS], db_url: str) -> Any:
    c = DBOSClient(system_database_url=db_url)
    yield c
    c.close()


def _runtime(dbos: type[DBOS]) -> Any:
    return dbos._current._runtime  # type: ignore[union-attr]


def test_enqueue_writes_the_row_the_application_writes(
    dbos: type[DBOS], client: DBOSClient
) -> None:
    from dbos_core.runtime.effects import run_sync
    from dbos_core.runtime.registry import registry
    from dbos_core.runtime.workflows import QueueRequest, start_protocol

    @DBOS.workflow()
    def data_pipeline(task: str, *, level: int = 0) -> str:
        return task

    reg = registry.get(data_pipeline.__qualname__)
    assert reg is not None
    with SetWorkflowID("from-app"):
        run_sync(
            start_protocol(reg, ("t",), {"level": 2}, "enqueue", QueueRequest("pipeline_queue"))
        )
    options: EnqueueOptions = {
        "queue_name": "pipeline_queue",
        "workflow_name": data_pipeline.__qualname__,
        "workflow_id": "from-client",
    }
    handle = client.enqueue(options, "t", level=2)
    assert handle.get_workflow_id() == "from-client"
    rt = _runtime(dbos)
    app_row = rt.sysdb.workflows.get_row("from-app")._mapping
    client_row = rt.sysdb.workflows.get_row("from-client")._mapping
    same = (
        "status",
        "name",
        "inputs",
        "queue_name",
        "priority",
        "deduplication_id",
        "started_at_epoch_ms",
        "recovery_attempts",
        "workflow_deadline_epoch_ms",
        "output",
    )
    assert {k: app_row[k] for k in same} == {k: client_row[k] for k in same}
    assert client_row["status"] == "ENQUEUED"
    status = handle.get_status()
    assert status.input == {"args": ("t",), "kwargs": {"level": 2}}
    # Enqueueing the same workflow ID again is idempotent.
    assert client.enqueue(options, "other").get_workflow_id() == "from-client"
    assert len(client.list_queued_workflows(queue_name="pipeline_queue")) == 2


def test_enqueue_options(client: DBOSClient) -> None:
    base: EnqueueOptions = {"queue_name": "q", "workflow_name": "wf"}
    h = client.enqueue(
        {
            **base,
            "workflow_id": "opts",
            "app_version": "v7",
            "workflow_timeout": 2.5,
            "deduplication_id": "d1",
            "priority": 5,
            "queue_partition_key": "p",
            "authenticated_user": "bob",
        },
        1,
    )
    s = h.get_status()
    assert (s.app_version, s.workflow_timeout_ms, s.deduplication_id, s.priority) == (
        "v7",
        2500,
        "d1",
        5,
    )
    assert (s.queue_partition_key, s.authenticated_user, s.workflow_deadline_epoch_ms) == (
        "p",
        "bob",
        None,
    )
    with pytest.raises(DBOSQueueDeduplicatedError):
        client.enqueue({**base, "deduplication_id": "d1"}, 2)
    for bad in (
        {"workflow_name": "wf"},
        {**base, "queue_name": ""},
        {**base, "priority": 0},
        {**base, "workflow_timeout": -1},
        {**base, "colour": "red"},
    ):
        with pytest.raises(DBOSException):
            client.enqueue(bad, 1)  # type: ignore[arg-type]
    with pytest.raises(DBOSException, match="EnqueueOptions"):
        client.enqueue("q", 1)  # type: ignore[arg-type]
    assert [w.workflow_id for w in client.list_workflows()] == ["opts"]


def test_retrieve_workflow_result_and_status(dbos: type[DBOS], client: DBOSClient) -> None:
    gate = threading.Event()

    @DBOS.workflow()
    def slow(x: int) -> int:
        gate.wait(10)
        return x * 3

    @DBOS.workflow()
    def failing() -> None:
        raise ServiceOutage("down")

    with SetWorkflowID("slow-1"):
        DBOS.start_workflow(slow, 7)
    handle = client.retrieve_workflow("slow-1")
    assert handle.get_status().status == "PENDING"
    threading.Timer(0.2, gate.set).start()
    assert handle.get_result() == 21
    assert handle.get_status().status == "SUCCESS"
    with SetWorkflowID("fail-1"), pytest.raises(ServiceOutage):
        failing()
    with pytest.raises(ServiceOutage):
        client.retrieve_workflow("fail-1").get_result()
    with pytest.raises(DBOSNonExistentWorkflowError):
        client.retrieve_workflow("nope")
    with pytest.raises(TimeoutError):
        client.enqueue({"queue_name": "q", "workflow_name": "x"}).get_result(timeout=0.1)


def test_get_event_wakes_when_published(dbos: type[DBOS], db_url: str) -> None:
    from dbos_core.storage.schema import workflow_events

    @DBOS.workflow()
    def w() -> None:
        return None

    with SetWorkflowID("evt-wf"):
        w()
    rt = _runtime(dbos)
    # A poll period far longer than the test: on PostgreSQL only NOTIFY can wake the client.
    poll = 0.05 if BACKEND == "sqlite" else 600.0
    client = DBOSClient(db_url, poll_interval=poll)
    try:
        assert client.get_event("evt-wf", "missing", timeout_seconds=0.1) is None

        def publish() -> None:
            with rt.sysdb.db.connect() as conn:
                conn.execute(
                    workflow_events.insert().values(
                        workflow_uuid="evt-wf",
                        key="progress",
                        value=rt.serializer.serialize({"pct": 50}),
                    )
                )

        threading.Timer(0.3, publish).start()
        assert client.get_event("evt-wf", "progress", timeout_seconds=60) == {"pct": 50}
    finally:
        client.close()


def test_send_and_read_stream(dbos: type[DBOS], client: DBOSClient) -> None:
    from dbos_core.storage.schema import notifications, streams
    from dbos_core.storage.streams import CLOSED_MARKER as STREAM_CLOSED_SENTINEL

    @DBOS.workflow()
    def w() -> None:
        return None

    with SetWorkflowID("dest"):
        w()
    rt = _runtime(dbos)
    client.send("dest", {"hello": 1}, topic="greetings")
    client.send("dest", "once", idempotency_key="k1")
    client.send("dest", "once", idempotency_key="k1")
    with rt.sysdb.db.connect() as conn:
        rows = conn.execute(
            sa.select(notifications.c.topic, notifications.c.message).order_by(notifications.c.seq)
        ).all()
    assert [(t, rt.serializer.deserialize(m)) for t, m in rows] == [
        ("greetings", {"hello": 1}),
        ("", "once"),
    ]
    with pytest.raises(DBOSNonExistentWorkflowError):
        client.send("no-such-workflow", 1)

    # The writer is still running (not finished), so the reader waits for the close marker.
    client.enqueue({"queue_name": "q", "workflow_name": "writer", "workflow_id": "streamer"})

    def write(offset: int, value: str) -> None:
        with rt.sysdb.db.connect() as conn:
            conn.execute(
                streams.insert().values(
                    workflow_uuid="streamer", key="out", offset=offset, value=value
                )
            )

    write(0, rt.serializer.serialize("a"))
    threading.Timer(
        0.2, lambda: (write(1, rt.serializer.serialize("b")), write(2, STREAM_CLOSED_SENTINEL))
    ).start()
    assert list(client.read_stream("streamer", "out")) == ["a", "b"]
    # A finished workflow's stream ends even without a close marker.
    assert list(client.read_stream("dest", "nothing")) == []


def test_cancel_resume_fork_through_client(dbos: type[DBOS], client: DBOSClient) -> None:
    from dbos_core.storage.management import INTERNAL_QUEUE_NAME

    h = client.enqueue({"queue_name": "q", "workflow_name": "wf", "workflow_id": "c1"})
    client.cancel_workflow("c1")
    assert h.get_status().status == "CANCELLED"
    client.resume_workflow("c1")
    s = h.get_status()
    # Back on the internal queue; a dispatcher may already be looking at it.
    assert s.queue_name == INTERNAL_QUEUE_NAME
    assert s.status in ("ENQUEUED", "PENDING")
    with pytest.raises(DBOSNonExistentWorkflowError):
        client.cancel_workflow("missing")
    with pytest.raises(DBOSNonExistentWorkflowError):
        client.resume_workflow("missing")
    forked = client.fork_workflow("c1", 1, forked_workflow_id="c1-fork", application_version="v9")
    fs = forked.get_status()
    assert (fs.status, fs.forked_from, fs.app_version) == ("ENQUEUED", "c1", "v9")


def test_client_refuses_an_uninitialised_database(tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here.sqlite"
    with pytest.raises(DBOSInitializationError, match="does not exist"):
        DBOSClient(f"sqlite:///{missing}")
    assert not missing.exists()
    empty_url = make_database_url(tmp_path, "empty")
    if BACKEND == "sqlite":
        sa.create_engine(empty_url).connect().close()
    try:
        with pytest.raises(
            DBOSInitializationError, match="not an initialised DBOS system database"
        ):
            DBOSClient(system_database_url=empty_url)
    finally:
        if BACKEND == "postgres":
            from tests.conftest import _pg_admin

            _pg_admin(f'DROP DATABASE IF EXISTS "{empty_url.rsplit("/", 1)[1]}" WITH (FORCE)')
    with pytest.raises(DBOSException):
        DBOSClient("mysql://nope/db")


def test_seed_scenario_client_in_another_process(dbos: type[DBOS], db_url: str) -> None:
    """Find workflows that failed in a time window, inspect their steps, fork from step 2."""

    runs = {"reserve": 0, "charge": 0, "ship": 0}
    outage = {"on": True}

    @DBOS.step()
    def reserve(order: str) -> str:
        runs["reserve"] += 1
        return f"reserved {order}"

    @DBOS.step()
    def charge(order: str) -> str:
        runs["charge"] += 1
        return f"charged {order}"

    @DBOS.step()
    def ship(order: str) -> str:
        runs["ship"] += 1
        if outage["on"]:
            raise ServiceOutage("shipping service down")
        return f"shipped {order}"

    @DBOS.workflow()
    def checkout(order: str) -> str:
        reserve(order)
        charge(order)
        return ship(order)

    @DBOS.workflow()
    def other_failure() -> None:
        raise ValueError("unrelated")

    def fail(wid: str, fn: Any, *args: Any) -> None:
        with SetWorkflowID(wid), pytest.raises((ServiceOutage, ValueError)):
            fn(*args)

    fail("before-window", checkout, "o0")
    time.sleep(0.02)
    window_start = ms_to_rfc3339(int(time.time() * 1000))
    fail("in-window-1", checkout, "o1")
    fail("in-window-2", checkout, "o2")
    fail("in-window-unrelated", other_failure)
    with SetWorkflowID("in-window-ok"):
        outage["on"] = False
        checkout("o3")
        outage["on"] = True
    time.sleep(0.02)
    window_end = ms_to_rfc3339(int(time.time() * 1000))
    time.sleep(0.02)
    fail("after-window", checkout, "o4")
    runs_before = dict(runs)
    # The outage is over: the forks the client makes run at once on the internal queue.
    outage["on"] = False

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tests/core/client_scenario_script.py"),
            db_url,
            window_start,
            window_end,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    forked = json.loads(proc.stdout.strip().splitlines()[-1])
    assert sorted(forked) == ["in-window-1-fork", "in-window-2-fork"]

    results = [DBOS.retrieve_workflow(w).get_result() for w in sorted(forked)]
    assert results == ["shipped o1", "shipped o2"]
    for wid, order in (("in-window-1-fork", "o1"), ("in-window-2-fork", "o2")):
        steps = DBOS.list_workflow_steps(wid)
        assert [s["function_id"] for s in steps] == [1, 2, 3]
        assert steps[0]["output"] == f"reserved {order}"  # copied from the original
        assert steps[2]["output"] == f"shipped {order}"
    assert runs["reserve"] == runs_before["reserve"]
    assert runs["charge"] == runs_before["charge"] + 2
    assert runs["ship"] == runs_before["ship"] + 2
    assert {w.workflow_id: w.forked_from for w in DBOS.list_workflows(workflow_ids=forked)} == {
        "in-window-1-fork": "in-window-1",
        "in-window-2-fork": "in-window-2",
    }


def test_client_enqueue_runs_on_the_application_queue(dbos: type[DBOS], client: Any) -> None:
    from dbos_core import Queue

    Queue("client_fed_queue", worker_concurrency=2)
    seen: list[str] = []

    @DBOS.workflow()
    def data_pipeline(task: str) -> str:
        seen.append(task)
        return task.upper()

    handles = [
        client.enqueue(
            {"queue_name": "client_fed_queue", "workflow_name": data_pipeline.__qualname__}, task
        )
        for task in ("a", "b", "c")
    ]
    assert [h.get_result(timeout=30) for h in handles] == ["A", "B", "C"]
    assert sorted(seen) == ["a", "b", "c"]
    status = handles[0].get_status()
    assert status.queue_name == "client_fed_queue"
    assert status.executor_id == DBOS.executor_id


def test_client_talks_to_a_running_workflow(dbos: type[DBOS], client: DBOSClient) -> None:
    """The client's send reaches DBOS.recv, and it reads what DBOS.write_stream wrote."""

    @DBOS.workflow()
    def echo() -> str:
        DBOS.set_event("ready", True)
        got = DBOS.recv("in", timeout_seconds=30)
        DBOS.write_stream("out", f"echo {got}")
        DBOS.close_stream("out")
        return str(got)

    handle = DBOS.start_workflow(echo)
    assert client.get_event(handle.workflow_id, "ready", timeout_seconds=30) is True
    client.send(handle.workflow_id, "ping", topic="in")
    assert list(client.read_stream(handle.workflow_id, "out")) == ["echo ping"]
    assert client.retrieve_workflow(handle.workflow_id).get_result() == "ping"
