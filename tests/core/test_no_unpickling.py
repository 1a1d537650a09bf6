"""Operator tools never run what they read: a crafted pickle in the system database stays
inert when an operator lists workflows through the admin server or the CLI (the Django
admin's test is in tests/django/test_admin.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from dbos_core import DBOS, DBOSConfig, JsonSerializer, SetWorkflowID
from dbos_core.runtime import global_state
from dbos_core.safe_display import describe_pickle, display_stored_value
from dbos_core.serialization import PickleSerializer
from tests.core.crafted_pickle import CRAFTED_ID, crafted, write_crafted_workflow
from tests.core.test_admin_server import TOKEN, free_port

ROOT = Path(__file__).resolve().parents[2]


def test_display_never_executes_and_says_what_a_pickle_holds(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    shown = display_stored_value(crafted(marker))
    assert not marker.exists()
    assert shown is not None and "references io.open" in shown and str(marker) in shown
    pickled = PickleSerializer()
    assert display_stored_value(pickled.serialize("cli")) == "'cli'"
    assert display_stored_value(pickled.serialize(42)) == "42"
    assert display_stored_value(pickled.serialize(None)) == "None"
    error = display_stored_value(pickled.serialize(RuntimeError("broken")))
    assert error is not None and "RuntimeError('broken')" in error
    inputs = display_stored_value(pickled.serialize({"args": (1,), "kwargs": {}}))
    assert inputs is not None and inputs.startswith("<pickle, ") and "dict" in inputs
    assert display_stored_value(JsonSerializer().serialize({"a": [1]})) == '{"a":[1]}'
    assert display_stored_value("???") == "<3 characters in an unknown format>"
    assert display_stored_value(None) is None
    assert describe_pickle(b"\x80\x05garbage") == "<pickle, 9 bytes, unreadable>"
    # The documented opt-in decodes with the given serializer (and so would execute).
    assert display_stored_value(pickled.serialize({"k": 1}), pickled) == "{'k': 1}"


@pytest.fixture()
def crafted_db(dbos_config: DBOSConfig, tmp_path: Path) -> Any:
    port = free_port()
    DBOS.destroy()
    DBOS(config={**dbos_config, "run_admin_server": True, "admin_port": port, "admin_token": TOKEN})
    DBOS.launch()
    marker = tmp_path / "pwned"
    db = global_state.get_runtime().sysdb.db
    write_crafted_workflow(db, marker)
    # An undeclared queue: no dispatcher here takes it, it only waits to be listed.
    write_crafted_workflow(db, marker, "crafted-q", status="ENQUEUED", queue_name="evil-q")
    yield port, marker
    DBOS.destroy()


def test_admin_server_lists_a_crafted_pickle_without_running_it(crafted_db: Any) -> None:
    port, marker = crafted_db
    admin = httpx.Client(
        base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    listed = admin.get("/workflows", params={"status": "ERROR"}).json()
    assert [w["workflow_id"] for w in listed] == [CRAFTED_ID]
    for field in ("input", "output", "error"):
        assert "references io.open" in listed[0][field]
    assert admin.post("/workflows", json={"status": "ERROR"}).json()[0]["output"]
    assert "references io.open" in admin.get(f"/workflows/{CRAFTED_ID}").json()["input"]
    steps = admin.get(f"/workflows/{CRAFTED_ID}/steps").json()
    assert "references io.open" in steps[0]["output"] and "io.open" in steps[0]["error"]
    queued = admin.get("/queues/workflows", params={"queue_name": "evil-q"}).json()
    assert [w["workflow_id"] for w in queued] == ["crafted-q"]
    assert "references io.open" in queued[0]["input"]
    assert len(admin.get("/workflows").json()) == 2
    assert not marker.exists()


def cli(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dbos_core.cli", *args, "--db-url", url],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_cli_lists_a_crafted_pickle_without_running_it(crafted_db: Any, db_url: str) -> None:
    _port, marker = crafted_db
    shown: dict[str, str] = {}
    for args in (
        ("workflow", "list"),
        ("workflow", "get", CRAFTED_ID, "--json"),
        ("workflow", "steps", CRAFTED_ID, "--json"),
        ("queue", "list", "--workflows", "--json"),
    ):
        proc = cli(*args, url=db_url)
        assert proc.returncode == 0, proc.stderr
        assert not marker.exists(), args
        shown[" ".join(args[:2])] = proc.stdout
    assert CRAFTED_ID in shown["workflow list"] and "crafted-q" in shown["workflow list"]
    assert "references io.open" in json.loads(shown["workflow get"])["output"]
    assert "references io.open" in json.loads(shown["workflow steps"])[0]["output"]
    queued = json.loads(shown["queue list"])
    assert [w["workflow_id"] for w in queued] == ["crafted-q"]
    assert "references io.open" in queued[0]["input"]
    # Only the explicit opt-in decodes, and then the pickle does run: that is what it means.
    opted = cli("workflow", "get", CRAFTED_ID, "--json", "--deserialize", url=db_url)
    assert opted.returncode == 0, opted.stderr
    assert marker.exists()


@DBOS.workflow()
def unpickling_json_job(items: list[int]) -> dict[str, int]:
    return {"total": sum(items)}


def test_cli_with_the_apps_json_serializer(dbos_config: DBOSConfig, db_url: str) -> None:
    DBOS.destroy()
    DBOS(config={**dbos_config, "serializer": JsonSerializer()})
    DBOS.launch()
    try:
        with SetWorkflowID("json-1"):
            assert unpickling_json_job([1, 2]) == {"total": 3}
    finally:
        DBOS.destroy()
    got = json.loads(cli("workflow", "get", "json-1", "--json", url=db_url).stdout)
    assert got["input"] == '{"args":[[1,2]],"kwargs":{}}' and got["output"] == '{"total":3}'
    decoded = cli(
        "workflow",
        "get",
        "json-1",
        "--json",
        "--deserialize",
        "--serializer",
        "dbos_core.serialization:JsonSerializer",
        url=db_url,
    )
    assert decoded.returncode == 0, decoded.stderr
    assert json.loads(decoded.stdout)["output"] == "{'total': 3}"
    bad = cli("workflow", "list", "--serializer", "json:loads", url=db_url)
    assert bad.returncode == 2 and "not a dbos_core Serializer" in bad.stderr
