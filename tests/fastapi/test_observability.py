"""FastAPI: a request's traceparent reaches the workflow it starts, and /metrics behind auth
(both through the example project, as its README shows them)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from dbos_core import DBOS, DBOSConfig
from example_projects.fastapi_shop.shop import create_app
from tests.metrics_text import Scrape
from tests.otlp_receiver import OTLPReceiver, otlp_receiver

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


@pytest.fixture()
def receiver() -> Iterator[OTLPReceiver]:
    with otlp_receiver() as rec:
        yield rec


def test_a_request_with_traceparent_starts_a_workflow_in_its_trace(
    dbos_config: DBOSConfig, receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOP_METRICS_TOKEN", "scrape-me")
    config: DBOSConfig = {
        **dbos_config,
        "enable_otlp": True,
        "otlp_traces_endpoints": [receiver.traces_endpoint],
        "otlp_logs_endpoints": [receiver.logs_endpoint],
        "enable_metrics": True,
    }
    DBOS.destroy()
    with TestClient(create_app(config)) as client:
        response = client.post(
            "/checkout",
            json={"items": {"book": 1}},
            headers={
                "traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01",
                "dbos-idempotency-key": "traced-cart",
            },
        )
        assert response.status_code == 200, response.text
        assert client.get("/metrics").status_code == 401
        scraped = client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
        assert scraped.status_code == 200
        metrics = Scrape(scraped.text)
        assert (
            metrics.value("dbos_workflows_completed_total", workflow="checkout", status="SUCCESS")
            == 1
        )
        assert (
            metrics.value("dbos_step_duration_seconds_count", step="charge_card", status="SUCCESS")
            == 1
        )
    DBOS.destroy()
    receiver.wait_for(lambda r: len(r.spans_named("checkout")) == 1)
    receiver.wait_for(lambda r: len(r.spans_named("POST /checkout")) == 1)

    request = receiver.one_span("POST /checkout")
    workflow = receiver.one_span("checkout")
    assert (request.trace_id, request.parent_span_id) == (TRACE_ID, CALLER_SPAN)
    assert (workflow.trace_id, workflow.parent_span_id) == (TRACE_ID, request.span_id)
    assert workflow.attributes["dbos.workflow.id"] == "traced-cart"
    steps = {s.name for s in receiver.children_of(workflow)}
    assert steps == {"price_order", "charge_card", "send_confirmation"}


def test_the_metrics_route_says_when_metrics_are_off(dbos_config: DBOSConfig) -> None:
    from fastapi import FastAPI

    from dbos_fastapi import DBOSMiddleware, metrics_router

    app = FastAPI()
    app.include_router(metrics_router(dependencies=[]))  # public, on purpose
    app.add_middleware(DBOSMiddleware, config=dbos_config)
    DBOS.destroy()
    with TestClient(app) as client:
        off = client.get("/metrics")
    DBOS.destroy()
    assert off.status_code == 404 and off.json()["error"] == "METRICS_DISABLED"
