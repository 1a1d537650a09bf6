"""Prometheus metrics read over HTTP from the admin server's /metrics after a known workload."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dbos_core import DBOS, DBOSConfig, Queue, SetWorkflowID
from tests.conftest import BACKEND
from tests.core.crashutil import wait_for
from tests.core.test_admin_server import TOKEN, free_port
from tests.metrics_text import Scrape


def launch_with_metrics(config: DBOSConfig) -> httpx.Client:
    port = free_port()
    DBOS.destroy()
    DBOS(
        config={
            **config,
            "enable_metrics": True,
            "run_admin_server": True,
            "admin_port": port,
            "admin_token": TOKEN,
        }
    )
    DBOS.launch()
    return httpx.Client(
        base_url=f"http://127.0.0.1:{port}",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=30,
    )


@pytest.fixture()
def admin(dbos_config: DBOSConfig) -> Iterator[httpx.Client]:
    client = launch_with_metrics(dbos_config)
    yield client
    client.close()
    DBOS.destroy()


def scrape(admin: httpx.Client) -> Scrape:
    response = admin.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape(response.text)


def test_counters_and_histograms_after_a_known_workload(admin: httpx.Client) -> None:
    flaky_calls: list[int] = []

    @DBOS.step(name="m_price")
    def price(x: int) -> int:
        return x * 3

    @DBOS.step(name="m_flaky", retries_allowed=True, interval_seconds=0, max_attempts=3)
    def flaky(x: int) -> int:
        flaky_calls.append(x)
        if len(flaky_calls) == 1:
            raise TimeoutError("first attempt times out")
        return x

    @DBOS.workflow(name="m_order")
    def order(x: int) -> int:
        return price(x) + flaky(x)

    @DBOS.workflow(name="m_broken")
    def broken() -> None:
        raise ValueError("always fails")

    for i in range(3):
        assert order(i) == 4 * i
    with pytest.raises(ValueError, match="always fails"):
        broken()

    m = scrape(admin)
    assert m.types["dbos_workflows_started"] == "counter"
    assert m.value("dbos_workflows_started_total", workflow="m_order") == 3
    assert m.value("dbos_workflows_completed_total", workflow="m_order", status="SUCCESS") == 3
    assert m.value("dbos_workflows_completed_total", workflow="m_broken", status="ERROR") == 1
    assert m.get("dbos_workflows_completed_total", workflow="m_order", status="ERROR") == 0

    assert m.types["dbos_workflow_duration_seconds"] == "histogram"
    labels = {"workflow": "m_order", "status": "SUCCESS"}
    assert m.value("dbos_workflow_duration_seconds_count", **labels) == 3
    assert m.value("dbos_workflow_duration_seconds_bucket", le="+Inf", **labels) == 3
    assert m.value("dbos_workflow_duration_seconds_sum", **labels) > 0
    assert m.value("dbos_workflow_duration_seconds_count", workflow="m_broken", status="ERROR") == 1

    assert m.value("dbos_step_duration_seconds_count", step="m_price", status="SUCCESS") == 3
    assert m.value("dbos_step_duration_seconds_count", step="m_flaky", status="SUCCESS") == 3
    assert m.value("dbos_step_retries_total", step="m_flaky") == 1
    assert m.get("dbos_step_retries_total", step="m_price") == 0
    # Buckets are cumulative: each one holds at least the one below it.
    buckets = sorted(
        (float(dict(lbl)["le"]), value)
        for (name, lbl), value in m.samples.items()
        if name == "dbos_step_duration_seconds_bucket" and dict(lbl)["step"] == "m_price"
    )
    assert [v for _, v in buckets] == sorted(v for _, v in buckets) and buckets[-1][1] == 3
    assert m.value("dbos_workflows_active") == 0
    assert m.value("dbos_workflows_waiting") == 0
    assert m.value("dbos_database_unavailable", database="system") == 0


def test_queue_depth_age_dispatch_latency_active_and_waiting(admin: httpx.Client) -> None:
    queue = Queue("metrics-queue", worker_concurrency=1)
    gate = threading.Event()

    @DBOS.step(name="m_wait_gate")
    def wait_gate() -> None:
        assert gate.wait(60)

    @DBOS.workflow(name="m_queued")
    def queued(i: int) -> int:
        wait_gate()
        return i

    @DBOS.workflow(name="m_listener")
    def listener() -> Any:
        return DBOS.recv("ping", timeout_seconds=60)

    handles = [queue.enqueue(queued, i) for i in range(3)]
    # One runs (and holds the queue's only slot), two wait ENQUEUED.
    wait_for(lambda: handles[0].get_status().status == "PENDING", what="the first to start")
    waiting = DBOS.start_workflow(listener)
    wait_for(lambda: scrape(admin).get("dbos_workflows_waiting") == 1, what="recv to park")

    m = scrape(admin)
    assert m.value("dbos_queue_depth", queue="metrics-queue") == 2
    assert 0 <= m.value("dbos_queue_oldest_age_seconds", queue="metrics-queue") < 60
    assert m.value("dbos_workflows_active") == 2  # the queued one and the listener
    assert m.value("dbos_workflows_waiting") == 1

    gate.set()
    assert [h.get_result(timeout=60) for h in handles] == [0, 1, 2]
    DBOS.send(waiting.workflow_id, "hello", topic="ping")
    assert waiting.get_result(timeout=60) == "hello"

    m = scrape(admin)
    assert m.value("dbos_queue_depth", queue="metrics-queue") == 0
    assert m.value("dbos_queue_oldest_age_seconds", queue="metrics-queue") == 0
    assert m.value("dbos_queue_dispatch_latency_seconds_count", queue="metrics-queue") == 3
    assert m.value("dbos_queue_dispatch_latency_seconds_sum", queue="metrics-queue") > 0
    assert m.value("dbos_workflows_waiting") == 0
    assert m.value("dbos_workflows_active") == 0
    assert m.value("dbos_workflows_completed_total", workflow="m_listener", status="SUCCESS") == 1


def test_recoveries_are_counted(dbos_config: DBOSConfig) -> None:
    gate = threading.Event()

    @DBOS.step(name="m_recovered_step")
    def held() -> str:
        assert gate.wait(60)
        return "done"

    @DBOS.workflow(name="m_recovered")
    def recovered() -> str:
        return held()

    DBOS.destroy()
    DBOS(config=dbos_config)
    DBOS.launch()
    with SetWorkflowID("m-recover-1"):
        DBOS.start_workflow(recovered)
    DBOS.destroy()  # it stays PENDING, owned by a process that is gone
    admin = launch_with_metrics(dbos_config)  # recovery at launch takes it over
    try:
        gate.set()
        assert DBOS.retrieve_workflow("m-recover-1").get_result(timeout=60) == "done"
        m = scrape(admin)
        assert m.value("dbos_workflow_recoveries_total", workflow="m_recovered") == 1
        assert m.value("dbos_workflows_started_total", workflow="m_recovered") == 1
    finally:
        admin.close()
        DBOS.destroy()


@pytest.mark.skipif(BACKEND != "postgres", reason="serialization failures need PostgreSQL")
def test_serialization_failures_are_counted_as_database_retries(admin: httpx.Client) -> None:
    import sqlalchemy as sa

    barrier = threading.Barrier(2, timeout=30)
    first_attempt = {"m_tx_a": True, "m_tx_b": True}

    def conflicting(name: str) -> int:
        session = DBOS.sql_session
        count = session.execute(sa.text("SELECT count(*) FROM m_ledger")).scalar()
        if first_attempt[name]:
            first_attempt[name] = False
            barrier.wait()  # both have read: their writes now conflict
        session.execute(sa.text("INSERT INTO m_ledger (who) VALUES (:w)"), {"w": name})
        return int(count)

    @DBOS.transaction(name="m_tx_a")
    def tx_a() -> int:
        return conflicting("m_tx_a")

    @DBOS.transaction(name="m_tx_b")
    def tx_b() -> int:
        return conflicting("m_tx_b")

    @DBOS.workflow(name="m_tx_workflow")
    def tx_workflow(which: str) -> int:
        return tx_a() if which == "a" else tx_b()

    from dbos_core.runtime import global_state
    from dbos_core.transactions.protocol import backend_for

    engine = backend_for(global_state.get_runtime()).db.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE m_ledger (who TEXT)"))
    first = DBOS.start_workflow(tx_workflow, "a")
    second = DBOS.start_workflow(tx_workflow, "b")
    assert sorted([first.get_result(timeout=60), second.get_result(timeout=60)]) == [0, 1]
    m = scrape(admin)
    assert m.value("dbos_database_retries_total", database="application") >= 1
    assert m.value("dbos_step_duration_seconds_count", step="m_tx_a", status="SUCCESS") == 1


def test_metrics_route_needs_the_token_and_metrics_on(dbos_config: DBOSConfig) -> None:
    admin = launch_with_metrics(dbos_config)
    try:
        base = str(admin.base_url)
        assert httpx.get(f"{base}/metrics").status_code == 401
        assert admin.post("/metrics").status_code == 405
    finally:
        admin.close()
    port = free_port()
    DBOS.destroy()
    DBOS(config={**dbos_config, "run_admin_server": True, "admin_port": port})
    DBOS.launch()
    try:
        off = httpx.get(f"http://127.0.0.1:{port}/metrics")
        assert off.status_code == 404 and off.json()["error"] == "METRICS_DISABLED"
    finally:
        DBOS.destroy()
