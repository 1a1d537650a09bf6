"""A real process killed (SIGKILL) while its workflow waits in recv or DBOS.sleep.

The child process (tests/core/proc/crash_child.py) starts the workflow and is
killed once the wait is durable; a new launch on the same database recovers it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from dbos_core import DBOS
from dbos_core.error import DBOSAwaitedWorkflowCancelledError

from .proc.crash_workflows import APP_VERSION, SLEEP_SECONDS
from .test_messaging import wait_for_step

ROOT = Path(__file__).resolve().parents[2]


def _spawn(db_url: str, mode: str, workflow_id: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.core.proc.crash_child", db_url, mode, workflow_id],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
    )


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def _step(workflow_id: str, name: str) -> Any:
    from dbos_core.runtime.global_state import get_runtime

    rt = get_runtime()
    for record in rt.sysdb.steps.load(workflow_id).values():
        if record.function_name == name:
            return rt.serializer.deserialize(record.output or "")
    raise AssertionError(f"{workflow_id} has no {name} step")


def test_killed_in_recv_receives_message_sent_meanwhile(
    dbos: type[DBOS], db_url: str, relaunch: Any
) -> None:
    proc = _spawn(db_url, "recv", "crash-recv")
    try:
        # recv recorded its give-up time: it is waiting for the message.
        wait_for_step("crash-recv", "DBOS.sleep", timeout=60)
    finally:
        _kill(proc)
    assert proc.returncode == -signal.SIGKILL
    assert DBOS.retrieve_workflow("crash-recv").get_status().status == "PENDING"
    DBOS.send("crash-recv", "paid", "crash-topic")
    relaunch(application_version=APP_VERSION)
    result = DBOS.retrieve_workflow("crash-recv").get_result(timeout=60)
    assert result["message"] == "paid"
    from dbos_core.runtime.global_state import get_runtime

    records = get_runtime().sysdb.steps.load("crash-recv")
    assert [records[k].function_name for k in sorted(records)] == [
        "DBOS.recv",
        "DBOS.sleep",
        "crash_now",
    ]


def test_killed_in_sleep_wakes_at_the_stored_time(
    dbos: type[DBOS], db_url: str, relaunch: Any
) -> None:
    proc = _spawn(db_url, "sleep", "crash-sleep")
    try:
        wait_for_step("crash-sleep", "DBOS.sleep", timeout=60)
    finally:
        _kill(proc)
    wake_at = _step("crash-sleep", "DBOS.sleep")
    # Restart only once the stored wake-up time has passed: a sleep counted afresh
    # from the restart would end SLEEP_SECONDS later, the stored one ends at once.
    time.sleep(max(0.0, wake_at - time.time()) + 0.1)
    relaunched_at = time.time()
    relaunch(application_version=APP_VERSION)
    woke = DBOS.retrieve_workflow("crash-sleep").get_result(timeout=60)
    assert wake_at <= woke < relaunched_at + SLEEP_SECONDS
    assert _step("crash-sleep", "DBOS.sleep") == wake_at


def test_timeout_holds_across_a_crash(dbos: type[DBOS], db_url: str, relaunch: Any) -> None:
    proc = _spawn(db_url, "recv-with-timeout", "crash-timeout")
    try:
        wait_for_step("crash-timeout", "DBOS.sleep", timeout=60)
    finally:
        _kill(proc)
    deadline = DBOS.retrieve_workflow("crash-timeout").get_status().workflow_deadline_epoch_ms
    assert deadline is not None
    relaunch(application_version=APP_VERSION)
    # Recovered, it still waits in recv (60 s), and is cancelled at the stored deadline.
    with pytest.raises(DBOSAwaitedWorkflowCancelledError):
        DBOS.retrieve_workflow("crash-timeout").get_result(timeout=60)
    status = DBOS.retrieve_workflow("crash-timeout").get_status()
    assert status.status == "CANCELLED"
    assert status.workflow_deadline_epoch_ms == deadline
    assert status.updated_at is not None and status.updated_at >= deadline


def test_cancel_from_another_process_interrupts_a_wait(dbos: type[DBOS], db_url: str) -> None:
    proc = _spawn(db_url, "recv-until-released", "remote-cancel")
    try:
        wait_for_step("remote-cancel", "DBOS.sleep", timeout=60)
        DBOS.cancel_workflow("remote-cancel")
        # The recv waits up to 60 s; the child sees the cancel long before
        # (NOTIFY on PostgreSQL, its polling fallback on SQLite) and lets go.
        out, _ = proc.communicate(timeout=30)
    finally:
        _kill(proc)
    assert b"released" in out
    assert DBOS.retrieve_workflow("remote-cancel").get_status().status == "CANCELLED"
