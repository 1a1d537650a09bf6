"""Durability, shown: a workflow is killed mid-way and resumes from its last completed step.

    python example_projects/durability_demo/demo.py

runs the whole show on the embedded SQLite default: it starts a worker process that runs
a four-step workflow, kills that process with SIGKILL while step 3 is running, starts a
new worker on the same database, and lets you watch it finish the workflow without
running steps 1 and 2 again. `demo.py worker` is the worker itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from dbos_core import DBOS, SetWorkflowID  # noqa: E402

WORK_DIR = Path(os.environ.get("DEMO_DIR", HERE / "demo-data"))
LEDGER = WORK_DIR / "side_effects.log"
WORKFLOW_ID = "order-1001"


def say(text: str) -> None:
    print(text, flush=True)


@DBOS.step()
def process_step(number: int, what: str) -> str:
    say(f"  [pid {os.getpid()}] step {number}: {what} ...")
    time.sleep(float(os.environ.get("DEMO_STEP_SECONDS", "1.0")))
    with LEDGER.open("a") as ledger:
        ledger.write(f"step {number} ran in pid {os.getpid()}\n")
    say(f"  [pid {os.getpid()}] step {number} done")
    return what


@DBOS.workflow()
def order_workflow(order_id: str) -> str:
    done = [
        process_step(1, "reserve stock"),
        process_step(2, "charge card"),
        process_step(3, "ship parcel"),
        process_step(4, "email receipt"),
    ]
    return f"order {order_id}: " + ", ".join(done)


def worker() -> None:
    DBOS(
        config={
            "name": "durability-demo",
            "system_database_url": f"sqlite:///{WORK_DIR / 'demo.sqlite'}",
            "log_level": "WARNING",
        }
    )
    DBOS.launch()  # resumes any workflow a dead worker left PENDING
    with SetWorkflowID(WORKFLOW_ID):
        handle = DBOS.start_workflow(order_workflow, "1001")
    say(f"  [pid {os.getpid()}] result: {handle.get_result()}")
    DBOS.destroy()


def run_worker_until(marker: str | None) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "worker"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "DEMO_DIR": str(WORK_DIR)},
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        print(line, end="", flush=True)
        if marker is not None and marker in line:
            break
    return proc


def main() -> None:
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    for path in WORK_DIR.iterdir():
        path.unlink()
    say("1. A worker starts the workflow (4 steps, each checkpointed in SQLite).")
    first = run_worker_until("step 3: ship parcel")
    say(f"2. Killing the worker (pid {first.pid}) with SIGKILL while step 3 runs.")
    first.send_signal(signal.SIGKILL)
    first.wait()
    say("3. Starting a new worker on the same database: it resumes the workflow.")
    second = run_worker_until(None)
    second.wait()
    say("4. Side effects recorded by the steps (steps 1 and 2 ran exactly once):")
    for line in LEDGER.read_text().splitlines():
        say(f"   {line}")
    ran = LEDGER.read_text()
    ok = ran.count("step 1 ") == 1 and ran.count("step 2 ") == 1 and ran.count("step 4 ") == 1
    say("Durability demo " + ("succeeded." if ok and second.returncode == 0 else "FAILED."))
    sys.exit(0 if ok and second.returncode == 0 else 1)


if __name__ == "__main__":
    worker() if sys.argv[1:] == ["worker"] else main()
