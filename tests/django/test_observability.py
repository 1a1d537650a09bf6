"""Django: a request's traceparent reaches the workflow it starts, and /metrics behind
Django's auth, through the example project served in a real process."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.django.test_example_notes import notes_env
from tests.django.test_processes import free_port
from tests.metrics_text import Scrape
from tests.otlp_receiver import OTLPReceiver, otlp_receiver

__all__ = ["notes_env"]

TRACE_ID = "5b8efff798038103d269b633813fc60c"
CALLER_SPAN = "eee19b7ec3c1b174"


@pytest.fixture()
def receiver() -> Iterator[OTLPReceiver]:
    with otlp_receiver() as rec:
        yield rec


def test_a_request_with_traceparent_starts_a_workflow_in_its_trace(
    notes_env: dict[str, str], tmp_path: Path, receiver: OTLPReceiver
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **notes_env,
        "NOTES_OTLP_COLLECTOR": f"http://127.0.0.1:{receiver.port}",
        "NOTES_METRICS": "1",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "example_projects.django_notes", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/admin/login/", timeout=5).status_code == 200:
                    break
            assert time.monotonic() < deadline
            time.sleep(0.1)
        started = httpx.post(
            f"{base}/notes/",
            content=json.dumps({"title": "Traced", "body": "one two three"}),
            headers={
                "traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01",
                "dbos-idempotency-key": "traced-note",
            },
        )
        assert started.status_code == 202, started.text
        receiver.wait_for(lambda r: len(r.spans_named("publish_note")) == 1)

        # Metrics are for staff: anonymous callers are sent to the admin login.
        assert httpx.get(f"{base}/metrics/").status_code == 302
        with httpx.Client(base_url=base) as browser:
            browser.get("/admin/login/")
            login = browser.post(
                "/admin/login/?next=/admin/",
                data={
                    "username": "demo",
                    "password": "demo",
                    "csrfmiddlewaretoken": browser.cookies["csrftoken"],
                },
                headers={"Referer": f"{base}/admin/login/"},
            )
            assert login.status_code == 302
            scraped = browser.get("/metrics/")
        assert scraped.status_code == 200
        metrics = Scrape(scraped.text)
        assert (
            metrics.value(
                "dbos_workflows_completed_total", workflow="publish_note", status="SUCCESS"
            )
            == 1
        )
    finally:
        proc.terminate()
        proc.wait(20)

    requests = [s for s in receiver.spans if s.parent_span_id == CALLER_SPAN]
    assert len(requests) == 1 and requests[0].trace_id == TRACE_ID
    workflow = receiver.one_span("publish_note", **{"dbos.workflow.id": "traced-note"})
    assert (workflow.trace_id, workflow.parent_span_id) == (TRACE_ID, requests[0].span_id)
    steps = {s.name for s in receiver.children_of(workflow)}
    assert {"save_draft", "count_words", "publish"} <= steps
