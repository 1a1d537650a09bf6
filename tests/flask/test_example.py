"""The Flask example project: in-process with the test client, and run as one command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask

from dbos_core import DBOS
from tests.core.crashutil import ROOT, lines, wait_for
from tests.flask.serverutil import free_port

EXAMPLE = ROOT / "example_projects" / "flask_orders"


@pytest.fixture()
def orders_app(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.setenv("ORDERS_DATA_DIR", str(tmp_path))
    from flask_orders import create_app

    DBOS.destroy()
    app = create_app({"DBOS_SYSTEM_DATABASE_URL": db_url, "DBOS_NOTIFICATION_POLL_INTERVAL": 0.05})
    yield app
    DBOS.destroy()


def wait_for_order(client: Any, order_id: str) -> dict[str, Any]:
    def done() -> bool:
        return bool(client.get(f"/orders/{order_id}").get_json()["status"] == "SUCCESS")

    wait_for(done, what=f"order {order_id}")
    body: dict[str, Any] = client.get(f"/orders/{order_id}").get_json()
    assert body["queue"] == "orders"  # orders are placed through the example's queue
    return body


def test_retried_order_is_placed_once(orders_app: Flask, tmp_path: Path) -> None:
    client = orders_app.test_client()
    headers = {"dbos-idempotency-key": "order-7"}
    first = client.post("/orders", json={"items": ["book", "pen"]}, headers=headers)
    retry = client.post("/orders", json={"items": ["book", "pen"]}, headers=headers)
    assert first.status_code == retry.status_code == 202
    assert first.get_json() == retry.get_json() == {"order_id": "order-7"}
    body = wait_for_order(client, "order-7")
    assert body["result"] == {
        "order_id": "order-7",
        "items": ["book", "pen"],
        "payment": "payment-order-7",
    }
    assert lines(tmp_path / "ledger.log") == [
        "reserved order-7 book,pen",
        "charged order-7 1000",
        "confirmed order-7 to guest",
    ]


def test_order_errors(orders_app: Flask) -> None:
    client = orders_app.test_client()
    missing = client.get("/orders/nope")
    assert missing.status_code == 404
    assert missing.get_json()["error"] == "NONEXISTENT_WORKFLOW"
    assert client.post("/orders", json={"items": "book"}).status_code == 400


def test_run_py_is_one_command(db_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "PORT": str(port), "ORDERS_DATA_DIR": str(tmp_path)}
    env.pop("PYTHONPATH", None)  # run.py finds the packages itself
    if not db_url.startswith("sqlite"):
        env["FLASK_DBOS_SYSTEM_DATABASE_URL"] = db_url
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(EXAMPLE / "run.py")],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            assert proc.poll() is None, log.read_text()
            try:
                return httpx.get(f"{base}/orders/none", timeout=2).status_code == 404
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=60, what="run.py to serve")
        headers = {"dbos-idempotency-key": "cli-order"}
        for _ in range(2):
            resp = httpx.post(f"{base}/orders", json={"items": ["mug"]}, headers=headers)
            assert resp.status_code == 202 and resp.json() == {"order_id": "cli-order"}

        def placed() -> bool:
            return bool(httpx.get(f"{base}/orders/cli-order").json()["status"] == "SUCCESS")

        wait_for(placed, what="the order to complete")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert proc.returncode == 0, log.read_text()
    assert "DBOS destroyed at exit" in log.read_text()
    assert [line.split()[0] for line in lines(tmp_path / "ledger.log")] == [
        "reserved",
        "charged",
        "confirmed",
    ]
    if db_url.startswith("sqlite"):
        assert (tmp_path / "orders.sqlite").exists()
