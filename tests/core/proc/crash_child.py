"""A process that starts one crash-test workflow and then waits to be killed.

Usage: python -m tests.core.proc.crash_child <system_database_url> <mode> <workflow_id>

Modes: ``recv`` and ``sleep`` start that workflow and wait for SIGKILL
(``recv-with-timeout`` too, under ``SetWorkflowTimeout(TIMEOUT_SECONDS)``);
``recv-until-released`` starts the recv workflow and exits (printing "released")
once its execution here has stopped, which a cancel from another process causes.
"""

from __future__ import annotations

import sys
import threading
import time

from dbos_core import DBOS, SetWorkflowID, SetWorkflowTimeout

from .crash_workflows import APP_VERSION, TIMEOUT_SECONDS, recv_workflow, sleep_workflow


def main() -> None:
    url, mode, workflow_id = sys.argv[1:4]
    DBOS(
        config={
            "name": "crash-test",
            "system_database_url": url,
            "application_version": APP_VERSION,
            "notification_poll_interval": 0.05,
        }
    )
    DBOS.launch()
    if mode == "recv-with-timeout":
        with SetWorkflowID(workflow_id), SetWorkflowTimeout(TIMEOUT_SECONDS):
            DBOS.start_workflow(recv_workflow)
    else:
        with SetWorkflowID(workflow_id):
            DBOS.start_workflow(sleep_workflow if mode == "sleep" else recv_workflow)
    print("started", flush=True)
    if mode in ("recv", "sleep", "recv-with-timeout"):
        threading.Event().wait()  # until SIGKILL
    from dbos_core.runtime.global_state import get_runtime

    rt = get_runtime()
    while rt.is_active(workflow_id):
        time.sleep(0.01)
    print("released", flush=True)
    DBOS.destroy()


if __name__ == "__main__":
    main()
