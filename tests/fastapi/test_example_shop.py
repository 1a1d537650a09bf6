"""The example project example_projects/fastapi_shop, in-process and by its one command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from dbos_core import DBOS, DBOSConfig
from example_projects.fastapi_shop.shop import create_app
from tests.fastapi.helpers import ROOT, free_port


@pytest.fixture()
def shop(dbos_config: DBOSConfig) -> Iterator[TestClient]:
    DBOS.destroy()
    with TestClient(create_app(dbos_config)) as client:
        yield client
    DBOS.destroy()


def test_retried_checkout_charges_once(shop: TestClient) -> None:
    headers = {"dbos-idempotency-key": "cart-42", "x-customer": "ada"}
    order = {"items": {"book": 1, "pen": 2}}
    first = shop.post("/checkout", json=order, headers=headers)
    retry = shop.post("/checkout", json=order, headers=headers)
    assert first.status_code == retry.status_code == 200
    assert first.json() == retry.json()
    receipt = first.json()
    assert receipt["order_id"] == "cart-42"
    assert receipt["customer"] == "ada"
    assert receipt["total_cents"] == 1700
    assert receipt["payment_id"].startswith("pay_")
    other = shop.post("/checkout", json=order, headers={"x-customer": "ada"}).json()
    assert other["order_id"] != "cart-42" and other["payment_id"] != receipt["payment_id"]
    assert DBOS.retrieve_workflow("cart-42").get_status().authenticated_user == "ada"


def test_background_order_and_errors(shop: TestClient) -> None:
    placed = shop.post(
        "/orders", json={"items": {"mug": 3}}, headers={"dbos-idempotency-key": "o-1"}
    )
    assert placed.status_code == 202 and placed.json() == {"order_id": "o-1"}
    receipt = shop.get("/orders/o-1/receipt").json()
    assert receipt["total_cents"] == 2400 and receipt["customer"] is None
    assert shop.get("/orders/o-1").json() == {
        "order_id": "o-1",
        "status": "SUCCESS",
        "progress": "confirmed",
        "receipt": receipt,
    }
    status = DBOS.retrieve_workflow("o-1").get_status()
    assert status.queue_name == "orders"
    # A retried enqueue with the same key is the same order, charged once.
    again = shop.post(
        "/orders", json={"items": {"mug": 3}}, headers={"dbos-idempotency-key": "o-1"}
    )
    assert again.json() == {"order_id": "o-1"}
    assert shop.get("/orders/o-1/receipt").json() == receipt
    assert len(DBOS.list_workflows(name=status.name)) == 1
    assert shop.post("/orders", json={"items": {"yacht": 1}}).status_code == 422
    missing = shop.get("/orders/nope")
    assert missing.status_code == 404 and missing.json()["error"] == "NONEXISTENT_WORKFLOW"


def test_runs_with_one_command(db_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "DBOS_SYSTEM_DATABASE_URL": db_url}
    err_path = tmp_path / "shop.err"
    with err_path.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "example_projects.fastapi_shop", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, err_path.read_text()
            try:
                response = httpx.post(
                    url + "/checkout",
                    json={"items": {"pen": 4}},
                    headers={"dbos-idempotency-key": "cli-1", "x-customer": "grace"},
                    timeout=30,
                )
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the shop did not start"
                time.sleep(0.05)
        assert response.status_code == 200
        assert response.json()["total_cents"] == 1000
        assert response.json()["customer"] == "grace"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
    assert "DBOS launched" in err_path.read_text()
