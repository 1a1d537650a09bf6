"""The README's tracing and metrics example runs as written, against a real OTLP receiver."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.core.crashutil import ROOT
from tests.core.test_admin_server import free_port
from tests.metrics_text import Scrape
from tests.otlp_receiver import otlp_receiver
from tests.readme import readme_section


def test_tracing_and_metrics_example(db_url: str, tmp_path: Path) -> None:
    code = re.findall(r"```python\n(.*?)```", readme_section("Tracing and metrics"), re.S)[0]
    (tmp_path / "shipping.py").write_text(code)
    with otlp_receiver() as receiver:
        out = subprocess.run(
            [sys.executable, "shipping.py"],
            cwd=tmp_path,
            env={
                **os.environ,
                "PYTHONPATH": str(ROOT),
                "OTLP_COLLECTOR": f"http://127.0.0.1:{receiver.port}",
                "ADMIN_PORT": str(free_port()),
                "DBOS_SYSTEM_DATABASE_URL": db_url,
            },
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        result, *metric_lines = out.stdout.splitlines()
        assert result == "courier-order-1"
        scraped = Scrape("\n".join(metric_lines) + "\n")
        assert (
            scraped.value("dbos_workflows_completed_total", workflow="ship", status="SUCCESS") == 1
        )
        # destroy() flushed before the process exited.
        receiver.wait_for(lambda r: len(r.spans_named("book_courier")) == 1)
        receiver.wait_for(lambda r: any(x.body == "courier booked for order-1" for x in r.logs))

        workflow = receiver.one_span("ship")
        step = receiver.one_span("book_courier")
        assert step.parent_span_id == workflow.span_id
        assert ("dbos.sleep", {"dbos.sleep.seconds": 0.1}) in workflow.events
        log = next(x for x in receiver.logs if x.body == "courier booked for order-1")
        assert (log.trace_id, log.span_id) == (step.trace_id, step.span_id)
        for item in (workflow, step, log):
            assert item.attributes["deployment.environment"] == "staging"
        assert workflow.resource["service.name"] == "shipping"
