"""The dbos-suite command line, run as a user runs it: a separate process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from dbos_core import DBOS, DBOSClient, SetWorkflowID
from tests.conftest import BACKEND

ROOT = Path(__file__).resolve().parents[2]


def cli(
    *args: str, url: str | None = None, env_url: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DBOS_SYSTEM_DATABASE_URL", None)
    if env_url is not None:
        env["DBOS_SYSTEM_DATABASE_URL"] = env_url
    argv = [sys.executable, "-m", "dbos_core.cli", *args]
    if url is not None:
        argv += ["--db-url", url]
    return subprocess.run(
        argv,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def ok_json(*args: str, url: str) -> Any:
    proc = cli(*args, "--json", url=url)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_console_script_is_declared() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, attr = scripts["dbos-suite"].partition(":")
    import importlib

    assert callable(getattr(importlib.import_module(module), attr))


def test_migrate_then_list_on_a_fresh_database(fresh_db_url: str) -> None:
    refused = cli("workflow", "list", url=fresh_db_url)
    assert refused.returncode == 1
    assert "dbos-suite migrate" in refused.stderr or "does not exist" in refused.stderr
    migrated = cli("migrate", url=fresh_db_url)
    assert migrated.returncode == 0, migrated.stderr
    from dbos_core.storage.migrations import LATEST_VERSION

    assert f"schema version {LATEST_VERSION}" in migrated.stdout
    again = ok_json("migrate", url=fresh_db_url)
    assert again["applied"] == 0
    listed = cli("workflow", "list", env_url=fresh_db_url)
    assert listed.returncode == 0 and listed.stdout.strip() == "(none)"


def test_usage_errors() -> None:
    missing = cli("workflow", "list")
    assert missing.returncode == 2 and "DBOS_SYSTEM_DATABASE_URL" in missing.stderr
    assert cli("workflow", "fork", "x").returncode == 2  # --step is required
    assert cli("nonsense").returncode == 2


def test_workflow_commands(dbos: type[DBOS], db_url: str) -> None:
    @DBOS.step()
    def fetch(x: int) -> int:
        return x + 1

    @DBOS.workflow()
    def job(x: int) -> int:
        return fetch(x) * 2

    @DBOS.workflow()
    def explode() -> None:
        raise KeyError("missing thing")

    for i in range(2):
        with SetWorkflowID(f"job-{i}"):
            job(i)
    with SetWorkflowID("explode-1"), pytest.raises(KeyError):
        explode()
    with DBOSClient(db_url) as client:
        client.enqueue(
            {"queue_name": "reports", "workflow_name": "nightly", "workflow_id": "queued-1"}
        )

    table = cli("workflow", "list", url=db_url)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["WORKFLOW_ID", "STATUS", "NAME"]
    assert [line.split()[0] for line in lines[2:]] == ["job-0", "job-1", "explode-1", "queued-1"]

    assert [
        w["workflow_id"] for w in ok_json("workflow", "list", "--status", "ERROR", url=db_url)
    ] == ["explode-1"]
    both = ok_json("workflow", "list", "-s", "ERROR", "-s", "ENQUEUED", "--sort-desc", url=db_url)
    assert [w["workflow_id"] for w in both] == ["queued-1", "explode-1"]
    assert [
        w["workflow_id"]
        for w in ok_json(
            "workflow", "list", "--prefix", "job-", "--limit", "1", "--offset", "1", url=db_url
        )
    ] == ["job-1"]
    assert [
        w["workflow_id"] for w in ok_json("workflow", "list", "--queue", "reports", url=db_url)
    ] == ["queued-1"]

    got = ok_json("workflow", "get", "job-1", url=db_url)
    assert got["status"] == "SUCCESS" and got["output"] == "4"
    record = cli("workflow", "get", "explode-1", url=db_url)
    assert "ERROR" in record.stdout and "missing thing" in record.stdout
    steps = ok_json("workflow", "steps", "job-1", url=db_url)
    assert [(s["function_id"], s["output"]) for s in steps] == [(1, "2")]
    assert "FUNCTION_ID" in cli("workflow", "steps", "job-1", url=db_url).stdout

    queues = ok_json("queue", "list", url=db_url)
    assert queues == [{"queue_name": "reports", "ENQUEUED": 1, "PENDING": 0}]
    assert [w["workflow_id"] for w in ok_json("queue", "list", "--workflows", url=db_url)] == [
        "queued-1"
    ]

    assert ok_json("workflow", "cancel", "queued-1", url=db_url)["status"] == "CANCELLED"
    resumed = ok_json("workflow", "resume", "queued-1", url=db_url)
    # Back on the internal queue; the app's dispatcher may be holding it this instant
    # (it hands back work whose function it does not have).
    assert resumed["status"] in ("ENQUEUED", "PENDING")
    forked = ok_json(
        "workflow", "fork", "job-1", "--step", "2", "--new-id", "job-1-again", url=db_url
    )
    assert forked == {"workflow_id": "job-1-again", "forked_from": "job-1"}
    # The fork runs on the internal queue; step 1 was copied, not run again.
    assert DBOS.retrieve_workflow("job-1-again").get_result(timeout=30) == 4
    copied = DBOS.list_workflow_steps("job-1-again")
    assert (copied[0]["function_id"], copied[0]["output"]) == (1, 2)

    for bad in (
        ("workflow", "get", "nope"),
        ("workflow", "cancel", "nope"),
        ("workflow", "list", "--status", "DONE"),
        ("workflow", "list", "--start-time", "yesterday"),
        ("workflow", "fork", "job-1", "--step", "7"),
    ):
        proc = cli(*bad, url=db_url)
        assert proc.returncode == 1, (bad, proc.stdout, proc.stderr)
        assert proc.stderr.startswith("dbos-suite: error: ") and "Traceback" not in proc.stderr
    assert len(DBOS.list_workflows()) == 5  # bad commands changed nothing


def test_reset_needs_confirmation(dbos: type[DBOS], db_url: str) -> None:
    @DBOS.workflow()
    def w() -> int:
        return 1

    with SetWorkflowID("keep-me"):
        w()
    DBOS.destroy()
    refused = cli("reset", url=db_url)
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert [x["workflow_id"] for x in ok_json("workflow", "list", url=db_url)] == ["keep-me"]
    done = cli("reset", "--yes", url=db_url)
    assert done.returncode == 0, done.stderr
    assert ok_json("workflow", "list", url=db_url) == []
    if BACKEND == "sqlite":
        assert Path(db_url.removeprefix("sqlite:///")).exists()
