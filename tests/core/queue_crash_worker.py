"""A process that claims queued tasks and hangs in them, to be SIGKILLed by a test.

Usage: python queue_crash_worker.py DB_URL TASKS
"""

from __future__ import annotations

import sys
import threading

from dbos_core import DBOS, Queue

queue = Queue("crash_q", worker_concurrency=2)


@DBOS.step(name="crash_step")
def crash_step(i: int) -> int:
    threading.Event().wait()  # hang until killed
    return i


@DBOS.workflow(name="crash_task")
def crash_task(i: int) -> int:
    return crash_step(i)


if __name__ == "__main__":
    DBOS(
        config={
            "name": "crash-test",
            "system_database_url": sys.argv[1],
            "executor_id": "crashy",
            "application_version": "cv1",
            "notification_poll_interval": 0.05,
        }
    )
    DBOS.launch()
    for i in range(int(sys.argv[2])):
        queue.enqueue(crash_task, i)
    print("enqueued", flush=True)
    threading.Event().wait()
