"""``flask --app ... dbos ...`` run in a subprocess, exactly as a user types it."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dbos_core import DBOS, SetWorkflowID
from tests.core.crashutil import ROOT, lines, wait_for
from tests.flask.serverutil import FLASK, app_env, flask_cmd, gunicorn

needs = {
    name: pytest.mark.skipif(
        not hasattr(DBOS, name), reason=f"DBOS.{name} is not in this version of dbos_core"
    )
    for name in (
        "list_workflows",
        "list_workflow_steps",
        "cancel_workflow",
        "resume_workflow",
        "fork_workflow",
        "list_queued_workflows",
    )
}


@pytest.fixture()
def completed_workflow(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A finished workflow of the app, run in this process on the app's database."""
    from tests.flask import server_app

    monkeypatch.setenv("MARKER_DIR", str(tmp_path))
    DBOS.destroy()
    DBOS(
        config={
            "name": "flask-server-test",
            "system_database_url": db_url,
            "application_version": "flask-server-test-v1",
        }
    )
    DBOS.launch()
    try:
        with SetWorkflowID("cli-wf"):
            server_app.flask_keyed_work("cli")
    finally:
        DBOS.destroy()
    yield "cli-wf"


def pending_workflow(db_url: str, tmp_path: Path) -> str:
    """A workflow left PENDING by a server killed with SIGKILL in its second step."""
    with gunicorn("tests.flask.server_wsgi:app", db_url, tmp_path) as server:
        resp = httpx.post(server.url("/crash"), headers={"dbos-idempotency-key": "stuck"})
        assert resp.status_code == 200
        wait_for(lambda: len(lines(tmp_path / "step2")) == 1, what="step 2 to start")
        server.kill9()
    return "stuck"


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_help_lists_the_commands(db_url: str, tmp_path: Path) -> None:
    out = ok(flask_cmd(db_url, tmp_path, "dbos", "--help"))
    for command in ("migrate", "reset", "worker", "workflow", "queue"):
        assert command in out
    out = ok(flask_cmd(db_url, tmp_path, "dbos", "workflow", "--help"))
    for command in ("list", "get", "steps", "cancel", "resume", "fork"):
        assert command in out


def test_migrate_then_get_and_reset(db_url: str, tmp_path: Path, completed_workflow: str) -> None:
    assert "up to date" in ok(flask_cmd(db_url, tmp_path, "dbos", "migrate"))

    status = json.loads(ok(flask_cmd(db_url, tmp_path, "dbos", "workflow", "get", "cli-wf")))
    assert status["workflow_id"] == "cli-wf"
    assert status["status"] == "SUCCESS"
    assert "flask_keyed_work" in status["name"]
    # Shown without unpickling: a summary of the pickled dict...
    assert status["output"].startswith("<pickle, ") and "dict" in status["output"]
    # ...unless the operator opts in to decoding it with the app's serializer.
    decoded = json.loads(
        ok(flask_cmd(db_url, tmp_path, "dbos", "workflow", "get", "cli-wf", "--deserialize"))
    )
    assert "cli-wf" in decoded["output"]

    missing = flask_cmd(db_url, tmp_path, "dbos", "workflow", "get", "nope")
    assert missing.returncode != 0
    assert "NONEXISTENT_WORKFLOW" in missing.stderr

    # Without --yes, reset asks; answering no keeps everything.
    declined = subprocess.run(
        [*FLASK, "dbos", "reset"],
        cwd=ROOT,
        env=app_env(db_url, tmp_path),
        input="n\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert declined.returncode != 0 and "Aborted" in declined.stderr
    ok(flask_cmd(db_url, tmp_path, "dbos", "workflow", "get", "cli-wf"))

    assert "reset" in ok(flask_cmd(db_url, tmp_path, "dbos", "reset", "--yes"))
    gone = flask_cmd(db_url, tmp_path, "dbos", "workflow", "get", "cli-wf")
    assert gone.returncode != 0 and "NONEXISTENT_WORKFLOW" in gone.stderr


def test_get_does_not_recover_pending_work(db_url: str, tmp_path: Path) -> None:
    workflow_id = pending_workflow(db_url, tmp_path)
    (tmp_path / "release").touch()
    status = json.loads(ok(flask_cmd(db_url, tmp_path, "dbos", "workflow", "get", workflow_id)))
    # A management command inspects; it never takes over a server's workflows.
    assert status["status"] == "PENDING"
    assert len(lines(tmp_path / "step2")) == 1 and not (tmp_path / "done").exists()


def test_worker_recovers_and_stops_on_sigterm(db_url: str, tmp_path: Path) -> None:
    workflow_id = pending_workflow(db_url, tmp_path)
    (tmp_path / "release").touch()
    worker = subprocess.Popen(
        [*FLASK, "dbos", "worker"],
        cwd=ROOT,
        env=app_env(db_url, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: (tmp_path / "done").exists(), what="the worker to finish the workflow")
    finally:
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    assert "DBOS worker running" in err and "DBOS worker stopped" in err
    assert lines(tmp_path / "done") == [f"{worker.pid} 50"]
    status = json.loads(ok(flask_cmd(db_url, tmp_path, "dbos", "workflow", "get", workflow_id)))
    assert status["status"] == "SUCCESS"


@pytest.mark.skipif(hasattr(DBOS, "list_workflows"), reason="the core has list_workflows")
def test_command_missing_from_core_says_so(db_url: str, tmp_path: Path) -> None:
    result = flask_cmd(db_url, tmp_path, "dbos", "workflow", "list")
    assert result.returncode != 0
    assert "no DBOS.list_workflows()" in result.stderr


@needs["list_workflows"]
def test_workflow_list(db_url: str, tmp_path: Path, completed_workflow: str) -> None:
    rows = json.loads(ok(flask_cmd(db_url, tmp_path, "dbos", "workflow", "list", "-S", "SUCCESS")))
    assert [r["workflow_id"] for r in rows] == ["cli-wf"]
    none = json.loads(ok(flask_cmd(db_url, tmp_path, "dbos", "workflow", "list", "-S", "ERROR")))
    assert none == []


@needs["list_workflow_steps"]
def test_workflow_steps(db_url: str, tmp_path: Path, completed_workflow: str) -> None:
    steps = json.loads(ok(flask_cmd(db_url, tmp_path, "dbos", "workflow", "steps", "cli-wf")))
    assert [s["function_id"] for s in steps] == [1]
    assert "flask_record_work" in steps[0]["function_name"]
    assert steps[0]["output"] == repr("cli")


@needs["cancel_workflow"]
@needs["resume_workflow"]
def test_workflow_cancel_then_resume(db_url: str, tmp_path: Path) -> None:
    workflow_id = pending_workflow(db_url, tmp_path)
    assert workflow_id in ok(flask_cmd(db_url, tmp_path, "dbos", "workflow", "cancel", workflow_id))
    status = json.loads(ok(flask_cmd(db_url, tmp_path, "dbos", "workflow", "get", workflow_id)))
    assert status["status"] == "CANCELLED"

    (tmp_path / "release").touch()
    resumed = json.loads(ok(flask_cmd(db_url, tmp_path, "dbos", "workflow", "resume", workflow_id)))
    assert resumed["status"] == "SUCCESS"
    assert len(lines(tmp_path / "step1")) == 1  # the completed step was not rerun
    assert len(lines(tmp_path / "done")) == 1


@needs["fork_workflow"]
def test_workflow_fork(db_url: str, tmp_path: Path, completed_workflow: str) -> None:
    forked = json.loads(
        ok(flask_cmd(db_url, tmp_path, "dbos", "workflow", "fork", "cli-wf", "--step", "1"))
    )
    assert forked["workflow_id"] != "cli-wf"
    assert forked["status"] == "SUCCESS"
    assert len(lines(tmp_path / "work")) == 2  # step 1 ran again in the fork


@needs["list_queued_workflows"]
def test_queue_list(db_url: str, tmp_path: Path, completed_workflow: str) -> None:
    rows = json.loads(ok(flask_cmd(db_url, tmp_path, "dbos", "queue", "list")))
    # The app enqueues nothing: no workflow is on a queue.
    assert rows == []
