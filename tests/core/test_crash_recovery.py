"""Real crashes: a child process is SIGKILLed mid-workflow and a new one resumes it."""

from __future__ import annotations

from pathlib import Path

from tests.core.crashutil import kill9, lines, spawn, wait_for

APP = Path(__file__).parent / "proc" / "crash_app.py"


def test_sigkill_during_step_two_resumes_from_last_completed_step(
    db_url: str, tmp_path: Path
) -> None:
    first = spawn(APP, db_url, str(tmp_path), "wf-crash-1")
    try:
        wait_for(lambda: len(lines(tmp_path / "step2")) == 1, what="step 2 to start")
    finally:
        kill9(first)
    assert lines(tmp_path / "step1") == [str(first.pid)]
    assert not (tmp_path / "done").exists()

    (tmp_path / "release").touch()
    second = spawn(APP, db_url, str(tmp_path), "wf-crash-1", env={"CRASH_APP_MODE": "recover"})
    out, _ = second.communicate(timeout=60)
    assert second.returncode == 0, out.decode()

    # Step 1 completed before the crash: it never ran again.
    assert lines(tmp_path / "step1") == [str(first.pid)]
    # Step 2 was interrupted, so it ran again, in the new process.
    assert lines(tmp_path / "step2") == [str(first.pid), str(second.pid)]
    assert lines(tmp_path / "done") == [f"{second.pid} 50"]
    assert lines(tmp_path / "result") == ["50"]


def test_other_executor_does_not_recover_foreign_workflow(db_url: str, tmp_path: Path) -> None:
    first = spawn(APP, db_url, str(tmp_path), "wf-crash-2", "--executor", "exec-a")
    try:
        wait_for(lambda: len(lines(tmp_path / "step2")) == 1, what="step 2 to start")
    finally:
        kill9(first)
    (tmp_path / "release").touch()
    # A process with another executor ID leaves exec-a's workflow alone...
    from dbos_core import DBOS

    DBOS(
        config={
            "name": "crash-app",
            "system_database_url": db_url,
            "executor_id": "exec-b",
            "application_version": "crash-test-v1",
        }
    )
    DBOS.launch()
    try:
        status = DBOS.retrieve_workflow("wf-crash-2").get_status()
        assert status.status == "PENDING"
        assert status.executor_id == "exec-a"
    finally:
        DBOS.destroy()
    # ...and exec-a, restarted, picks it up.
    second = spawn(
        APP,
        db_url,
        str(tmp_path),
        "wf-crash-2",
        "--executor",
        "exec-a",
        env={"CRASH_APP_MODE": "recover"},
    )
    out, _ = second.communicate(timeout=60)
    assert second.returncode == 0, out.decode()
    assert lines(tmp_path / "step1") == [str(first.pid)]
    assert lines(tmp_path / "result") == ["50"]


EXIT_WHILE_RUNNING = """
import sys, threading
from dbos_core import DBOS
DBOS(config={"name": "exits", "system_database_url": sys.argv[1]})
@DBOS.workflow()
def forever() -> None:
    threading.Event().wait()
DBOS.launch()
DBOS.start_workflow(forever)
print("started", flush=True)
"""


def test_program_can_end_while_a_workflow_runs(db_url: str, tmp_path: Path) -> None:
    # Workflow threads are daemons: the work is durable, so the process need not wait.
    script = tmp_path / "exits.py"
    script.write_text(EXIT_WHILE_RUNNING)
    proc = spawn(script, db_url)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out.decode()
    assert b"started" in out


LAUNCH_THEN_FORK = """
import os, sys
from dbos_core import DBOS
from dbos_core.error import DBOSNotLaunchedError
DBOS(config={"name": "forks", "system_database_url": sys.argv[1]})
@DBOS.workflow()
def wf(x: int) -> int:
    return x + 1
DBOS.launch()
assert wf(1) == 2
pid = os.fork()
if pid == 0:
    try:
        wf(2)
        os._exit(3)  # must not run on the parent's threads and connections
    except DBOSNotLaunchedError as exc:
        assert "fork" in str(exc)
    DBOS.launch()  # a fresh runtime for this worker
    code = 0 if wf(5) == 6 else 4
    DBOS.destroy()
    os._exit(code)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
assert wf(10) == 11
DBOS.destroy()
print("ok")
"""


def test_launch_before_fork_needs_launch_in_child(db_url: str, tmp_path: Path) -> None:
    script = tmp_path / "fork.py"
    script.write_text(LAUNCH_THEN_FORK)
    proc = spawn(script, db_url)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out.decode()
    assert b"ok" in out


def test_sibling_with_same_executor_leaves_live_work_and_takes_over_dead(
    db_url: str, tmp_path: Path
) -> None:
    """Processes sharing the default executor ID (web workers, say) never run one
    workflow twice while its owner lives, and take it over as soon as it dies."""
    import time

    first = spawn(APP, db_url, str(tmp_path), "wf-shared")
    try:
        wait_for(lambda: len(lines(tmp_path / "step2")) == 1, what="step 2 to start")
        (tmp_path / "release").touch()  # the first process stays parked regardless
        sibling = spawn(
            APP,
            db_url,
            str(tmp_path),
            "wf-shared",
            env={"CRASH_APP_MODE": "recover", "CRASH_APP_RECOVERY_INTERVAL": "0.1"},
        )
        # Several recovery passes go by: the owner is alive, so nothing is taken over.
        time.sleep(1.0)
        assert sibling.poll() is None
        assert lines(tmp_path / "step2") == [str(first.pid)]
    finally:
        kill9(first)
    out, _ = sibling.communicate(timeout=60)
    assert sibling.returncode == 0, out.decode()
    assert lines(tmp_path / "step1") == [str(first.pid)]
    assert lines(tmp_path / "step2") == [str(first.pid), str(sibling.pid)]
    assert lines(tmp_path / "result") == ["50"]
