"""Workflows shared by the crash tests and the child processes they kill."""

from __future__ import annotations

import time

from dbos_core import DBOS

APP_VERSION = "crash-test-v1"
SLEEP_SECONDS = 3.0
TIMEOUT_SECONDS = 2.0


@DBOS.step(name="crash_now")
def now() -> float:
    return time.time()


@DBOS.workflow(name="crash_recv_workflow")
def recv_workflow() -> object:
    message = DBOS.recv("crash-topic", timeout_seconds=60)
    return {"message": message, "at": now()}


@DBOS.workflow(name="crash_sleep_workflow")
def sleep_workflow() -> float:
    DBOS.sleep(SLEEP_SECONDS)
    return now()
