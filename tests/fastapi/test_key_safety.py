"""Idempotency keys through FastAPI: bound to their user, validated, decoded as UTF-8."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from dbos_core import DBOS, DBOSClient
from dbos_fastapi import DBOSMiddleware, install_exception_handlers

runs: list[str] = []
gate = threading.Event()


@DBOS.step()
def fa_key_charge_card(order: str) -> str:
    runs.append(order)
    return f"charged the card of {DBOS.authenticated_user}"


@DBOS.workflow()
def fa_key_private_checkout(order: str) -> dict[str, Any]:
    gate.wait(30)
    return {"order_id": DBOS.workflow_id, "payment": fa_key_charge_card(order)}


def make_app() -> FastAPI:
    app = FastAPI()

    @app.post("/checkout/{order}")
    async def checkout(order: str) -> dict[str, Any]:
        return await asyncio.to_thread(fa_key_private_checkout, order)

    @app.get("/order-id")
    def order_id(request: Request) -> str | None:
        return DBOS.workflow_id or request.headers.get("dbos-idempotency-key")

    @app.get("/unreachable")
    def unreachable() -> str:
        with DBOSClient("postgresql://secretuser:pw@127.0.0.1:1/secretdb"):
            return "never"

    # Who is calling: a header stands in for the app's real authentication.
    app.add_middleware(
        DBOSMiddleware, user_resolver=lambda conn: conn.headers.get("x-user") or None
    )
    install_exception_handlers(app)
    return app


@pytest.fixture()
def client(dbos: type[DBOS]) -> TestClient:
    runs.clear()
    gate.set()
    return TestClient(make_app())


def post(client: TestClient, key: str | bytes, user: str | None = None) -> httpx.Response:
    headers: dict[str, Any] = {"dbos-idempotency-key": key}
    if user is not None:
        headers["x-user"] = user
    return client.post("/checkout/book", headers=headers)


def assert_refused_without_a_word(response: httpx.Response, owner: str = "alice") -> None:
    assert response.status_code == 409, response.text
    assert response.json()["error"] == "WORKFLOW_ID_CONFLICT"
    for secret in (owner, "charged", "fa_key_private_checkout", "SUCCESS"):
        assert secret not in response.text


def test_same_key_two_users(client: TestClient) -> None:
    first = post(client, "order-1", "alice")
    assert first.status_code == 200
    assert first.json()["payment"] == "charged the card of alice"
    assert_refused_without_a_word(post(client, "order-1", "bob"))
    assert post(client, "order-1", "alice").json() == first.json()  # her retry
    assert runs == ["book"]


def test_user_then_anonymous_and_anonymous_then_user(client: TestClient) -> None:
    assert post(client, "order-2", "alice").status_code == 200
    assert_refused_without_a_word(post(client, "order-2"))
    anonymous = post(client, "order-3")
    assert anonymous.status_code == 200
    assert post(client, "order-3").json() == anonymous.json()  # anonymous retry
    refused = post(client, "order-3", "alice")
    assert refused.status_code == 409 and refused.json()["error"] == "WORKFLOW_ID_CONFLICT"
    assert runs == ["book", "book"]


async def test_concurrent_requests_of_two_users(dbos: type[DBOS]) -> None:
    runs.clear()
    gate.clear()
    transport = httpx.ASGITransport(app=make_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as http:

        def send(user: str) -> Any:
            headers = {"dbos-idempotency-key": "race-1", "x-user": user}
            return asyncio.ensure_future(http.post("/checkout/book", headers=headers))

        pending = [send(user) for user in ("alice", "bob", "alice", "bob")]
        # Both users' requests are in: the losers have their 409 while the work is held.
        while not any(p.done() for p in pending):
            await asyncio.sleep(0.01)
        gate.set()
        responses = await asyncio.gather(*pending)
    owner = DBOS.retrieve_workflow("race-1").get_status().authenticated_user
    assert owner in ("alice", "bob")
    for user, response in zip(("alice", "bob", "alice", "bob"), responses, strict=True):
        if user == owner:
            assert response.status_code == 200
            assert response.json()["payment"] == f"charged the card of {owner}"
        else:
            assert_refused_without_a_word(response, owner)
    assert runs == ["book"]


@pytest.mark.parametrize(
    "key",
    ["k" * 10_000, "tab\there", "bell\x07", "del\x7f", "", "   "],
    ids=["10000-chars", "tab", "bell", "del", "empty", "blank"],
)
def test_bad_keys_are_a_400_before_any_work(client: TestClient, key: str) -> None:
    # (Bytes that are not UTF-8 are tested against a real server: TestClient re-encodes.)
    response = post(client, key, "alice")
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "INVALID_ID"
    assert "idempotency key" in response.json()["message"]
    assert runs == [] and DBOS.list_workflows() == []


def test_bad_request_id_is_a_400(client: TestClient) -> None:
    response = client.post("/checkout/book", headers={"x-request-id": "r" * 300})
    assert response.status_code == 400 and "request id" in response.json()["message"]
    assert runs == []


def test_utf8_keys_are_read_as_sent(client: TestClient) -> None:
    response = post(client, "café-☕".encode(), "alice")
    assert response.status_code == 200
    assert response.json()["order_id"] == "café-☕"
    assert DBOS.retrieve_workflow("café-☕").get_status().authenticated_user == "alice"


def test_unreachable_database_503_says_no_host_user_or_name(client: TestClient) -> None:
    response = client.get("/unreachable")
    assert response.status_code == 503
    assert response.json()["error"] == "DATABASE_UNAVAILABLE"
    for secret in ("secretuser", "secretdb", "127.0.0.1", ":1"):
        assert secret not in response.text
