"""Idempotency keys through Django: bound to their user, validated, decoded as UTF-8."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.http import HttpResponse
from django.test import Client

from dbos_core import DBOS
from tests.core.crashutil import wait_for
from tests.django.testapp import workflows
from tests.django.testapp.models import Note

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

KEY = "HTTP_DBOS_IDEMPOTENCY_KEY"


@pytest.fixture()
def users(django_dbos: Any) -> None:
    for name in ("alice", "bob"):
        User.objects.create_user(name)


def post(key: str, user: str | None = None, path: str = "/notes/?title=t") -> HttpResponse:
    headers: dict[str, str] = {KEY: key}
    if user is not None:
        headers["HTTP_X_TEST_USER"] = user  # the view authenticates it (as DRF does)
    response: HttpResponse = Client().post(path, **headers)  # type: ignore[arg-type]
    return response


def assert_refused_without_a_word(response: HttpResponse, owner: str = "alice") -> None:
    assert response.status_code == 409, response.content
    assert response.json()["error"] == "WORKFLOW_ID_CONFLICT"
    text = response.content.decode()
    for secret in (owner, "note_workflow", "gated_workflow", "SUCCESS", "note(s)"):
        assert secret not in text


def test_same_key_two_users(users: None) -> None:
    first = post("order-1", "alice")
    assert first.status_code == 200, first.content
    assert first.json()["user"] == "alice"
    assert_refused_without_a_word(post("order-1", "bob"))
    assert post("order-1", "alice").json() == first.json()
    assert Note.objects.count() == 1


def test_user_then_anonymous_and_anonymous_then_user(users: None) -> None:
    assert post("order-2", "alice").status_code == 200
    assert_refused_without_a_word(post("order-2"))
    anonymous = post("order-3")
    assert anonymous.status_code == 200
    assert post("order-3").json() == anonymous.json()
    assert post("order-3", "alice").status_code == 409
    assert Note.objects.count() == 2


def test_concurrent_requests_of_two_users(users: None) -> None:
    names = ["alice", "bob", "alice", "bob"]
    responses: dict[int, HttpResponse] = {}

    def send(i: int) -> None:
        responses[i] = post("race-1", names[i], path="/gated/")

    threads = [threading.Thread(target=send, args=(i,)) for i in range(4)]
    try:
        for t in threads:
            t.start()
        # The work is held at the gate; the other user's requests are answered meanwhile.
        wait_for(lambda: len(responses) == 2, what="the refused requests")
    finally:
        workflows.gate.set()
        for t in threads:
            t.join(30)
        workflows.gate.clear()
    owner = DBOS.retrieve_workflow("race-1").get_status().authenticated_user
    assert owner in ("alice", "bob")
    for i, name in enumerate(names):
        if name == owner:
            assert responses[i].json()["result"] == "passed+done"
        else:
            assert_refused_without_a_word(responses[i], str(owner))


@pytest.mark.parametrize(
    "key",
    ["k" * 10_000, "tab\there", "bell\x07", "nul\x00", "", "   ", "\xff\xfe-not-utf8"],
    ids=["10000-chars", "tab", "bell", "nul", "empty", "blank", "not-utf8"],
)
def test_bad_keys_are_a_400_before_any_work(users: None, key: str) -> None:
    response = post(key, "alice")
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "INVALID_ID"
    assert "idempotency key" in response.json()["message"]
    assert Note.objects.count() == 0 and DBOS.list_workflows() == []


def test_utf8_keys_are_read_as_sent(users: None) -> None:
    # A WSGI server hands header bytes over decoded as latin-1 (PEP 3333).
    response = post("café-☕".encode().decode("latin-1"), "alice")
    assert response.status_code == 200
    assert response.json()["workflow_id"] == "café-☕"


def test_unreachable_database_503_says_no_host_user_or_name(django_dbos: Any) -> None:
    response = Client().get("/unreachable/")
    assert response.status_code == 503
    assert response.json()["error"] == "DATABASE_UNAVAILABLE"
    for secret in ("secretuser", "secretdb", "127.0.0.1"):
        assert secret not in response.content.decode()
