"""Idempotency keys through Flask: bound to their user, validated, decoded as UTF-8."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, jsonify, request
from werkzeug.test import TestResponse

from dbos_core import DBOS, DBOSClient, DBOSConfig
from dbos_core import integration as seam
from dbos_flask import DBOSFlask
from tests.core.crashutil import ROOT, wait_for

runs: list[str] = []
gate = threading.Event()


@DBOS.step()
def flask_charge_card(order: str) -> str:
    runs.append(order)
    return f"charged the card of {DBOS.authenticated_user}"


@DBOS.workflow()
def flask_private_checkout(order: str) -> dict[str, Any]:
    gate.wait(30)
    return {"order_id": DBOS.workflow_id, "payment": flask_charge_card(order)}


def make_app(config: DBOSConfig) -> Flask:
    app = Flask("flask_key_safety")
    app.config["DBOS_CONFIG"] = config
    DBOSFlask(app, user_resolver=lambda: request.headers.get("X-User") or None)

    @app.post("/checkout/<order>")
    def checkout(order: str) -> Any:
        return jsonify(flask_private_checkout(order))

    @app.get("/unreachable")
    def unreachable() -> Any:
        with DBOSClient("postgresql://secretuser:pw@127.0.0.1:1/secretdb"):
            return "never"

    return app


@pytest.fixture()
def app(dbos_config: DBOSConfig) -> Iterator[Flask]:
    DBOS.destroy()
    runs.clear()
    gate.set()
    yield make_app(dbos_config)
    gate.set()
    DBOS.destroy()


def post(app: Flask, key: str, user: str | None = None) -> TestResponse:
    headers = {"dbos-idempotency-key": key}
    if user is not None:
        headers["X-User"] = user
    return app.test_client().post("/checkout/book", headers=headers)


def assert_refused_without_a_word(response: TestResponse, owner: str = "alice") -> None:
    assert response.status_code == 409, response.text
    assert response.get_json()["error"] == "WORKFLOW_ID_CONFLICT"
    for secret in (owner, "charged", "flask_private_checkout", "SUCCESS"):
        assert secret not in response.text


def test_same_key_two_users(app: Flask) -> None:
    first = post(app, "order-1", "alice")
    assert first.status_code == 200
    assert first.get_json()["payment"] == "charged the card of alice"
    assert_refused_without_a_word(post(app, "order-1", "bob"))
    assert post(app, "order-1", "alice").get_json() == first.get_json()
    assert runs == ["book"]


def test_user_then_anonymous_and_anonymous_then_user(app: Flask) -> None:
    assert post(app, "order-2", "alice").status_code == 200
    assert_refused_without_a_word(post(app, "order-2"))
    anonymous = post(app, "order-3")
    assert anonymous.status_code == 200
    assert post(app, "order-3").get_json() == anonymous.get_json()
    assert post(app, "order-3", "alice").status_code == 409
    assert runs == ["book", "book"]


def test_concurrent_requests_of_two_users(app: Flask) -> None:
    gate.clear()
    users = ["alice", "bob", "alice", "bob"]
    responses: dict[int, TestResponse] = {}

    def send(i: int) -> None:
        responses[i] = post(app, "race-1", users[i])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    # The work is held at the gate; the other user's requests are answered meanwhile.
    wait_for(lambda: len(responses) == 2, what="the refused requests")
    gate.set()
    for t in threads:
        t.join(30)
    owner = DBOS.retrieve_workflow("race-1").get_status().authenticated_user
    assert owner in ("alice", "bob")
    for i, user in enumerate(users):
        if user == owner:
            assert responses[i].status_code == 200
        else:
            assert_refused_without_a_word(responses[i], str(owner))
    assert runs == ["book"]


@pytest.mark.parametrize(
    "key",
    ["k" * 10_000, "tab\there", "bell\x07", "nul\x00", "", "   ", "\xff\xfe-not-utf8"],
    ids=["10000-chars", "tab", "bell", "nul", "empty", "blank", "not-utf8"],
)
def test_bad_keys_are_a_400_before_any_work(app: Flask, key: str) -> None:
    response = post(app, key, "alice")
    assert response.status_code == 400, response.text
    assert response.get_json()["error"] == "INVALID_ID"
    assert "idempotency key" in response.get_json()["message"]
    assert runs == [] and not seam.is_launched()  # refused before even launching


def test_utf8_keys_are_read_as_sent(app: Flask) -> None:
    # A WSGI server hands header bytes over decoded as latin-1 (PEP 3333).
    on_the_wire = "café-☕".encode().decode("latin-1")
    response = post(app, on_the_wire, "alice")
    assert response.status_code == 200
    assert response.get_json()["order_id"] == "café-☕"


def test_unreachable_database_503_says_no_host_user_or_name(app: Flask) -> None:
    response = app.test_client().get("/unreachable")
    assert response.status_code == 503
    assert response.get_json()["error"] == "DATABASE_UNAVAILABLE"
    for secret in ("secretuser", "secretdb", "127.0.0.1"):
        assert secret not in response.text


def test_launch_setting_from_the_environment_is_a_boolean(db_url: str, tmp_path: Path) -> None:
    # app.config.from_prefixed_env() leaves "False" a string: it must still mean False.
    script = (
        "from flask import Flask\n"
        "from dbos_core import integration\n"
        "from dbos_flask import DBOSFlask\n"
        "app = Flask('env_flag')\n"
        f"app.config['DBOS_SYSTEM_DATABASE_URL'] = {db_url!r}\n"
        "app.config.from_prefixed_env()\n"
        "DBOSFlask(app)\n"
        "app.get('/')(lambda: 'ok')\n"
        "assert app.test_client().get('/').text == 'ok'\n"
        "print('launched' if integration.is_launched() else 'not launched')\n"
    )
    results = {}
    for value in ("False", "True"):
        proc = subprocess.run(
            [sys.executable, "-c", script],
            cwd=tmp_path,
            env={"PYTHONPATH": str(ROOT), "FLASK_DBOS_LAUNCH_ON_FIRST_REQUEST": value},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        results[value] = proc.stdout.strip()
    assert results == {"False": "not launched", "True": "launched"}
