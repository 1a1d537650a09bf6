"""A small application run in a child process by the crash tests.

Usage: python crash_app.py DB_URL MARKER_DIR WORKFLOW_ID [--executor ID]
Step 1 writes a marker file and completes; step 2 writes its own marker, then
blocks until the test kills the process (first run) or finishes (recovery run).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from dbos_core import DBOS, SetWorkflowID

db_url, marker_dir, workflow_id = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
executor = sys.argv[5] if len(sys.argv) > 5 and sys.argv[4] == "--executor" else "local"


def append(name: str, text: str) -> None:
    with open(marker_dir / name, "a") as f:
        f.write(text + "\n")
        f.flush()
        os.fsync(f.fileno())


@DBOS.step()
def step_one(x: int) -> int:
    append("step1", f"{os.getpid()}")
    return x + 1


@DBOS.step()
def step_two(x: int) -> int:
    append("step2", f"{os.getpid()}")
    if not (marker_dir / "release").exists():
        # The first process parks here until it is killed.
        while True:
            time.sleep(0.05)
    return x * 10


@DBOS.workflow()
def crash_workflow(x: int) -> int:
    a = step_one(x)
    b = step_two(a)
    append("done", f"{os.getpid()} {b}")
    return b


if __name__ == "__main__":
    DBOS(
        config={
            "name": "crash-app",
            "system_database_url": db_url,
            "executor_id": executor,
            "application_version": "crash-test-v1",
            "recovery_interval": float(os.environ.get("CRASH_APP_RECOVERY_INTERVAL", "5")),
        }
    )
    DBOS.launch()
    mode = os.environ.get("CRASH_APP_MODE", "start")
    if mode == "start":
        with SetWorkflowID(workflow_id):
            DBOS.start_workflow(crash_workflow, 4)
        while True:
            time.sleep(0.1)
    else:
        # Recovery run: launch already resumed the workflow; wait for its outcome.
        result = DBOS.retrieve_workflow(workflow_id).get_result()
        append("result", str(result))
        DBOS.destroy()
