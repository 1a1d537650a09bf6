"""The example project example_projects/fastapi_tickets (SQLModel, async transactions):
in-process, by its one command, and killed in the middle of a booking."""

from __future__ import annotations

import asyncio
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
from fastapi.testclient import TestClient

from dbos_core import DBOS
from example_projects.fastapi_tickets import tickets
from tests.core.crashutil import lines, wait_for
from tests.fastapi.helpers import ROOT, free_port
from tests.transactions.common import app_databases, sync_url


@pytest.fixture()
def tickets_db(tmp_path: Path) -> Iterator[str]:
    with app_databases(tmp_path, "tickets") as (url,):
        yield url


@pytest.fixture()
def office(db_url: str, tickets_db: str, tmp_path: Path) -> Iterator[TestClient]:
    DBOS.destroy()
    tickets.Outbox.path, tickets.Outbox.seconds = tmp_path / "outbox.log", 0.0
    app = tickets.create_app(tickets_db, db_url)
    with TestClient(app) as client:
        yield client
    DBOS.destroy()
    app.state.engine.dispose()
    asyncio.run(app.state.async_engine.dispose())
    tickets.Outbox.path = None


def wait_for_ticket(get: Any, ticket_id: str, workflow: str = "SUCCESS") -> dict[str, Any]:
    wait_for(lambda: get(f"/tickets/{ticket_id}")["workflow"] == workflow, what=ticket_id)
    body: dict[str, Any] = get(f"/tickets/{ticket_id}")
    return body


def test_booking_reserves_once_and_sells_out(office: TestClient, tmp_path: Path) -> None:
    created = office.post("/events", json={"name": "Recital", "seats": 2})
    assert created.status_code == 201
    event_id = created.json()["event_id"]
    key = {"dbos-idempotency-key": "ticket-ann"}
    first = office.post(f"/events/{event_id}/tickets", json={"holder": "ann"}, headers=key)
    again = office.post(f"/events/{event_id}/tickets", json={"holder": "ann"}, headers=key)
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json() == {"ticket_id": "ticket-ann"}

    def get(path: str) -> Any:
        return office.get(path).json()

    assert wait_for_ticket(get, "ticket-ann") == {
        "ticket_id": "ticket-ann",
        "workflow": "SUCCESS",
        "status": "sent",
        "holder": "ann",
    }
    # The retried request was the same booking: one seat taken, one e-mail.
    assert office.get(f"/events/{event_id}").json()["seats_left"] == 1
    assert lines(tmp_path / "outbox.log") == [
        "emailing ticket-ann to ann",
        "emailed ticket-ann to ann",
    ]
    steps = DBOS.list_workflow_steps("ticket-ann")
    assert [s["function_name"].rsplit(".", 1)[-1] for s in steps] == [
        "reserve_seat",
        "email_ticket",
        "mark_sent",
    ]
    bob = office.post(f"/events/{event_id}/tickets", json={"holder": "bob"}).json()["ticket_id"]
    assert wait_for_ticket(get, bob)["status"] == "sent"
    # Sold out: the reservation raises, its transaction rolls back, the workflow fails.
    carl = office.post(f"/events/{event_id}/tickets", json={"holder": "carl"}).json()["ticket_id"]
    assert wait_for_ticket(get, carl, "ERROR")["status"] is None
    assert office.get(f"/events/{event_id}").json()["seats_left"] == 0


def test_bad_requests(office: TestClient) -> None:
    assert office.post("/events", json={"name": "", "seats": 1}).status_code == 422
    assert office.post("/events", json={"name": "x", "seats": 0}).status_code == 422
    assert office.post("/events/999/tickets", json={"holder": "ann"}).status_code == 404
    event_id = office.post("/events", json={"name": "x", "seats": 1}).json()["event_id"]
    assert office.post(f"/events/{event_id}/tickets", json={"holder": ""}).status_code == 422
    missing = office.get("/tickets/nope")
    assert missing.status_code == 404 and missing.json()["error"] == "NONEXISTENT_WORKFLOW"


@contextlib.contextmanager
def serve(
    db_url: str, tickets_db: str, data_dir: Path, log_name: str, **env_overrides: str
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    env = {
        **os.environ,
        "DBOS_SYSTEM_DATABASE_URL": db_url,
        "TICKETS_DATABASE_URL": tickets_db,
        "TICKETS_OUTBOX": str(data_dir / "outbox.log"),
        **env_overrides,
    }
    log = data_dir / log_name
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "example_projects.fastapi_tickets", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            assert proc.poll() is None, log.read_text()
            try:
                return httpx.get(f"{base}/events/0", timeout=2).status_code == 404
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=60, what="the ticket office to serve")
        yield proc, base
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(30)


def test_killed_mid_booking_the_seat_is_reserved_once(
    db_url: str, tickets_db: str, tmp_path: Path
) -> None:
    def seats_and_tickets() -> tuple[list[Any], list[Any]]:
        engine = sa.create_engine(sync_url(tickets_db))
        try:
            with engine.connect() as conn:
                seats = conn.execute(sa.text("SELECT seats_left FROM events")).scalars().all()
                rows = conn.execute(sa.text("SELECT id, status FROM tickets")).all()
                return list(seats), [tuple(r) for r in rows]
        finally:
            engine.dispose()

    outbox = tmp_path / "outbox.log"
    # A mail service slow enough to kill the server while it waits on it.
    with serve(db_url, tickets_db, tmp_path, "first.log", TICKETS_EMAIL_SECONDS="120") as (
        proc,
        base,
    ):
        event_id = httpx.post(f"{base}/events", json={"name": "Gala", "seats": 5}).json()[
            "event_id"
        ]
        booked = httpx.post(
            f"{base}/events/{event_id}/tickets",
            json={"holder": "dora"},
            headers={"dbos-idempotency-key": "ticket-dora"},
        )
        assert booked.status_code == 202
        wait_for(lambda: lines(outbox) == ["emailing ticket-dora to dora"], what="the e-mail")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    # The async reservation transaction committed, with its checkpoint, before the kill.
    assert seats_and_tickets() == ([4], [("ticket-dora", "reserved")])
    # Restarted, the middleware launches DBOS, which resumes the booking on its own
    # event loop: the seat is not taken again; the e-mail (not recorded) is sent again.
    with serve(db_url, tickets_db, tmp_path, "second.log") as (_proc, base):
        body = wait_for_ticket(lambda path: httpx.get(base + path).json(), "ticket-dora")
        assert body["status"] == "sent"
        assert httpx.get(f"{base}/events/{event_id}").json()["seats_left"] == 4
    assert seats_and_tickets() == ([4], [("ticket-dora", "sent")])
    assert lines(outbox) == [
        "emailing ticket-dora to dora",
        "emailing ticket-dora to dora",
        "emailed ticket-dora to dora",
    ]
