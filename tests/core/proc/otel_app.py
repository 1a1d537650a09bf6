"""A traced application run in a child process by the observability crash test.

Usage: python otel_app.py DB_URL MARKER_DIR WORKFLOW_ID TRACES_ENDPOINT
Mode "start" (default) starts the workflow and parks in step two until killed;
mode "recover" (CRASH_APP_MODE) lets launch recover it, waits for its result and
destroys DBOS (which flushes the spans).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from dbos_core import DBOS, SetWorkflowID

db_url, marker_dir, workflow_id, endpoint = sys.argv[1:5]
markers = Path(marker_dir)


def append(name: str, text: str) -> None:
    with open(markers / name, "a") as f:
        f.write(text + "\n")
        f.flush()
        os.fsync(f.fileno())


@DBOS.step()
def traced_step_one(x: int) -> int:
    append("step1", str(os.getpid()))
    return x + 1


@DBOS.step()
def traced_step_two(x: int) -> int:
    append("step2", str(os.getpid()))
    while not (markers / "release").exists():
        time.sleep(0.05)  # the first process parks here until it is killed
    return x * 10


@DBOS.workflow()
def traced_workflow(x: int) -> int:
    return traced_step_two(traced_step_one(x))


if __name__ == "__main__":
    DBOS(
        config={
            "name": "otel-crash-app",
            "system_database_url": db_url,
            "application_version": "otel-crash-v1",
            "enable_otlp": True,
            "otlp_traces_endpoints": [endpoint],
        }
    )
    DBOS.launch()
    if os.environ.get("CRASH_APP_MODE", "start") == "start":
        with SetWorkflowID(workflow_id):
            DBOS.start_workflow(traced_workflow, 4)
        while True:
            time.sleep(0.1)
    else:
        result = DBOS.retrieve_workflow(workflow_id).get_result()
        append("result", str(result))
        DBOS.destroy()
