"""The Flask example project (Flask-SQLAlchemy, Flask-Migrate, DBOS transactions):
in-process with the test client, run as one command, and killed mid-checkout."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from flask import Flask

from dbos_core import DBOS
from dbos_core.integration import set_transaction_backend_factory
from tests.core.crashutil import ROOT, lines, wait_for
from tests.flask.serverutil import free_port
from tests.transactions.common import app_databases, sync_url

EXAMPLE = ROOT / "example_projects" / "flask_orders"


@pytest.fixture()
def orders_db(tmp_path: Path) -> Iterator[str]:
    with app_databases(tmp_path, "orders_app") as (url,):
        yield sync_url(url)


@pytest.fixture()
def orders_app(
    db_url: str, orders_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Flask]:
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.setenv("ORDERS_DATA_DIR", str(tmp_path))
    import flask_migrate
    from flask_orders import create_app
    from flask_orders.models import db

    DBOS.destroy()
    app = create_app(
        {
            "DBOS_SYSTEM_DATABASE_URL": db_url,
            "DBOS_NOTIFICATION_POLL_INTERVAL": 0.05,
            "SQLALCHEMY_DATABASE_URI": orders_db,
        }
    )
    with app.app_context():
        flask_migrate.upgrade()
    yield app
    DBOS.destroy()
    with app.app_context():
        db.engine.dispose()
    set_transaction_backend_factory(None)


def wait_for_order(get: Any, order_id: str, status: str = "SUCCESS") -> dict[str, Any]:
    def done() -> bool:
        return bool(get(f"/orders/{order_id}")["status"] == status)

    wait_for(done, what=f"order {order_id} to be {status}")
    body: dict[str, Any] = get(f"/orders/{order_id}")
    assert body["queue"] == "orders"  # orders are placed through the example's queue
    return body


def test_retried_order_is_placed_once(orders_app: Flask, tmp_path: Path) -> None:
    client = orders_app.test_client()
    headers = {"dbos-idempotency-key": "order-7"}
    first = client.post("/orders", json={"items": ["book", "pen"]}, headers=headers)
    retry = client.post("/orders", json={"items": ["book", "pen"]}, headers=headers)
    assert first.status_code == retry.status_code == 202
    assert first.get_json() == retry.get_json() == {"order_id": "order-7"}
    body = wait_for_order(lambda path: client.get(path).get_json(), "order-7")
    assert body["result"] == {
        "order_id": "order-7",
        "items": ["book", "pen"],
        "payment": "payment-order-7",
        "total_cents": 1450,
    }
    # The rows the transactions wrote through db.session, once.
    assert body["order"] == {
        "items": ["book", "pen"],
        "total_cents": 1450,
        "status": "paid",
        "payment_id": "payment-order-7",
    }
    assert client.get("/stock").get_json() == {"book": 9, "mug": 2, "pen": 99}
    assert lines(tmp_path / "ledger.log") == [
        "charging order-7 1450",
        "charged order-7 1450",
        "confirmed order-7 to guest",
    ]


def test_out_of_stock_rolls_the_whole_reservation_back(orders_app: Flask) -> None:
    client = orders_app.test_client()
    headers = {"dbos-idempotency-key": "greedy"}
    placed = client.post("/orders", json={"items": ["book", "mug", "mug", "mug"]}, headers=headers)
    assert placed.status_code == 202
    body = wait_for_order(lambda path: client.get(path).get_json(), "greedy", "ERROR")
    assert body["order"] is None
    # The book and the two mugs taken before the third was missing: all given back.
    assert client.get("/stock").get_json() == {"book": 10, "mug": 2, "pen": 100}


def test_order_errors(orders_app: Flask) -> None:
    client = orders_app.test_client()
    missing = client.get("/orders/nope")
    assert missing.status_code == 404
    assert missing.get_json()["error"] == "NONEXISTENT_WORKFLOW"
    assert client.post("/orders", json={"items": "book"}).status_code == 400
    unknown = client.post("/orders", json={"items": ["book", "yacht"]})
    assert unknown.status_code == 400 and unknown.get_json()["message"] == "unknown SKUs: yacht"


def test_migrations_match_the_models(db_url: str, orders_db: str, tmp_path: Path) -> None:
    """The hand-written migration creates exactly what the models (and DBOS's checkpoint
    table in db.metadata) declare: `flask db check` finds nothing to generate."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "ORDERS_DATA_DIR": str(tmp_path),
        "FLASK_DBOS_SYSTEM_DATABASE_URL": db_url,
        "FLASK_SQLALCHEMY_DATABASE_URI": orders_db,
    }

    def flask(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "flask", "--app", "flask_orders", *args],
            cwd=EXAMPLE,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    upgraded = flask("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    checked = flask("db", "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "No new upgrade operations detected" in checked.stdout + checked.stderr


@contextlib.contextmanager
def run_py(
    db_url: str, orders_db: str, data_dir: Path, log_name: str, **env_overrides: str
) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    port = free_port()
    env = {**os.environ, "PORT": str(port), "ORDERS_DATA_DIR": str(data_dir), **env_overrides}
    env.pop("PYTHONPATH", None)  # run.py finds the packages itself
    if not db_url.startswith("sqlite"):
        env["FLASK_DBOS_SYSTEM_DATABASE_URL"] = db_url
        env["FLASK_SQLALCHEMY_DATABASE_URI"] = orders_db
    log = data_dir / log_name
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(EXAMPLE / "run.py")],
            cwd=data_dir,
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
        yield proc, base, log
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


def test_run_py_is_one_command(db_url: str, orders_db: str, tmp_path: Path) -> None:
    with run_py(db_url, orders_db, tmp_path, "run.log") as (proc, base, log):
        headers = {"dbos-idempotency-key": "cli-order"}
        for _ in range(2):
            resp = httpx.post(f"{base}/orders", json={"items": ["mug"]}, headers=headers)
            assert resp.status_code == 202 and resp.json() == {"order_id": "cli-order"}
        wait_for_order(lambda path: httpx.get(base + path).json(), "cli-order")
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        assert proc.returncode == 0, log.read_text()
        assert "DBOS destroyed at exit" in log.read_text()
    assert [line.split()[0] for line in lines(tmp_path / "ledger.log")] == [
        "charging",
        "charged",
        "confirmed",
    ]
    if db_url.startswith("sqlite"):
        assert (tmp_path / "orders.sqlite").exists()
        assert (tmp_path / "orders-app.sqlite").exists()


def test_killed_mid_payment_the_order_resumes_and_stock_is_taken_once(
    db_url: str, orders_db: str, tmp_path: Path
) -> None:
    app_db = (
        orders_db if not db_url.startswith("sqlite") else f"sqlite:///{tmp_path}/orders-app.sqlite"
    )

    def stock_and_orders() -> tuple[list[Any], list[Any]]:
        engine = sa.create_engine(app_db)
        try:
            with engine.connect() as conn:
                stock = conn.execute(sa.text("SELECT sku, stock FROM products ORDER BY sku"))
                orders = conn.execute(sa.text("SELECT id, status FROM orders"))
                return [tuple(r) for r in stock], [tuple(r) for r in orders]
        finally:
            engine.dispose()

    # A payment provider slow enough to kill the server while it waits on it.
    with run_py(db_url, orders_db, tmp_path, "first.log", FLASK_ORDERS_PAYMENT_SECONDS="120") as (
        proc,
        base,
        _log,
    ):
        placed = httpx.post(
            f"{base}/orders",
            json={"items": ["book", "mug"]},
            headers={"dbos-idempotency-key": "crash-order"},
        )
        assert placed.status_code == 202
        wait_for(
            lambda: lines(tmp_path / "ledger.log") == ["charging crash-order 2000"],
            what="the payment to start",
        )
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    # The reservation transaction committed (with its checkpoint) before the kill.
    assert stock_and_orders() == (
        [("book", 9), ("mug", 1), ("pen", 100)],
        [("crash-order", "reserved")],
    )
    with run_py(db_url, orders_db, tmp_path, "second.log") as (_proc, base, _log):
        body = wait_for_order(lambda path: httpx.get(base + path).json(), "crash-order")
        assert body["order"]["status"] == "paid"
    # Recovered from its last completed step: the stock was taken once, the payment
    # (interrupted, so not recorded) was made again and completed once.
    assert stock_and_orders() == (
        [("book", 9), ("mug", 1), ("pen", 100)],
        [("crash-order", "paid")],
    )
    assert lines(tmp_path / "ledger.log") == [
        "charging crash-order 2000",
        "charging crash-order 2000",
        "charged crash-order 2000",
        "confirmed crash-order to guest",
    ]
