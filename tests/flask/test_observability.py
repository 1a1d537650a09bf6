"""Flask: a request's traceparent reaches the workflow it enqueues, and /metrics behind
auth (through the example project, as its README shows them)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from dbos_core import DBOS
from tests.core.crashutil import ROOT
from tests.metrics_text import Scrape
from tests.otlp_receiver import OTLPReceiver, otlp_receiver

EXAMPLE = ROOT / "example_projects" / "flask_orders"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"


@pytest.fixture()
def receiver() -> Iterator[OTLPReceiver]:
    with otlp_receiver() as rec:
        yield rec


@pytest.fixture()
def traced_app(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receiver: OTLPReceiver
) -> Iterator[Flask]:
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.setenv("ORDERS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ORDERS_METRICS_TOKEN", "scrape-me")
    from flask_orders import create_app

    DBOS.destroy()
    app = create_app(
        {
            "DBOS_SYSTEM_DATABASE_URL": db_url,
            "DBOS_NOTIFICATION_POLL_INTERVAL": 0.05,
            "DBOS_ENABLE_OTLP": True,
            "DBOS_OTLP_TRACES_ENDPOINTS": [receiver.traces_endpoint],
            "DBOS_ENABLE_METRICS": True,
        }
    )
    yield app
    DBOS.destroy()


def test_a_request_with_traceparent_enqueues_a_workflow_in_its_trace(
    traced_app: Flask, receiver: OTLPReceiver
) -> None:
    client = traced_app.test_client()
    placed = client.post(
        "/orders",
        json={"items": ["book"]},
        headers={"traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01", "dbos-idempotency-key": "o-9"},
    )
    assert placed.status_code == 202
    assert DBOS.retrieve_workflow("o-9").get_result(timeout=60)["order_id"] == "o-9"

    assert client.get("/metrics").status_code == 401
    scraped = client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
    assert scraped.status_code == 200
    metrics = Scrape(scraped.get_data(as_text=True))
    assert (
        metrics.value("dbos_workflows_completed_total", workflow="checkout_order", status="SUCCESS")
        == 1
    )
    assert metrics.value("dbos_queue_dispatch_latency_seconds_count", queue="orders") == 1

    DBOS.destroy()
    receiver.wait_for(lambda r: len(r.spans_named("checkout_order")) == 1)
    requests = [s for s in receiver.spans if s.parent_span_id == CALLER_SPAN]
    assert len(requests) == 1 and requests[0].trace_id == TRACE_ID
    request = requests[0]
    workflow = receiver.one_span("checkout_order")
    assert (workflow.trace_id, workflow.parent_span_id) == (TRACE_ID, request.span_id)
    assert workflow.attributes["dbos.queue.name"] == "orders"
    assert len(receiver.children_of(workflow)) == 3
