"""The middleware: idempotency keys, lazily resolved users, no leaks, JSON errors."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.db import connections
from django.test import AsyncClient, Client

from dbos_core import DBOS, SetWorkflowID, integration
from tests.django.testapp import workflows
from tests.django.testapp.models import Note

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

KEY = "HTTP_DBOS_IDEMPOTENCY_KEY"


@pytest.fixture()
def alice() -> User:
    user = User.objects.create_user("alice", password="pw")
    user.groups.add(Group.objects.create(name="editors"))
    return user


def test_idempotency_key_names_the_first_workflow(django_dbos: Any) -> None:
    client = Client()
    first = client.post("/notes/?title=a", **{KEY: "order-1"})
    assert first.status_code == 200, first.content
    assert first.json()["workflow_id"] == "order-1"
    # The same key again: the same workflow, its recorded result, nothing runs twice.
    second = client.post("/notes/?title=a", **{KEY: "order-1"})
    assert second.json() == first.json()
    assert Note.objects.count() == 1


def test_no_key_and_nothing_leaks_between_requests(django_dbos: Any) -> None:
    client = Client()
    client.post("/notes/?title=k", **{KEY: "leaky"})
    plain = client.post("/notes/?title=plain")
    assert plain.json()["workflow_id"] not in ("leaky", None)
    assert integration.current_request() is None
    assert Note.objects.count() == 2


def test_user_resolved_lazily_after_view_authentication(django_dbos: Any, alice: User) -> None:
    # The view sets request.user itself (as DRF does), after the middleware ran.
    response = Client().post("/notes/?title=mine", HTTP_X_TEST_USER="alice", **{KEY: "u-1"})
    body = response.json()
    assert body["user"] == "alice" and body["roles"] == ["editors"]
    status = DBOS.retrieve_workflow("u-1").get_status()
    assert status.authenticated_user == "alice"
    assert status.authenticated_roles == ["editors"]
    assert Note.objects.get().created_by == "alice"


def test_session_login_user_and_anonymous(django_dbos: Any, alice: User) -> None:
    client = Client()
    anonymous = client.post("/notes/?title=anon").json()
    assert anonymous["user"] is None and anonymous["roles"] is None
    client.force_login(alice)
    logged_in = client.post("/notes/?title=session").json()
    assert logged_in["user"] == "alice"
    client.logout()
    assert client.post("/notes/?title=anon2").json()["user"] is None


async def _async_requests(alice_name: str) -> tuple[Any, Any]:
    client = AsyncClient()
    with_user = await client.post(
        "/notes/async/?title=as",
        headers={"X-Test-User": alice_name, "dbos-idempotency-key": "as-1"},
    )
    anonymous = await client.post("/notes/async/?title=as2")
    return with_user, anonymous


def test_async_views(django_dbos: Any, alice: User) -> None:
    from asgiref.sync import async_to_sync

    with_user, anonymous = async_to_sync(_async_requests)("alice")
    assert with_user.status_code == 200, with_user.content
    assert with_user.json()["workflow_id"] == "as-1"
    assert with_user.json()["user"] == "alice"
    assert with_user.json()["roles"] == ["editors"]
    assert anonymous.json()["user"] is None
    assert anonymous.json()["workflow_id"] != "as-1"


def test_dbos_errors_become_json(django_dbos: Any) -> None:
    with SetWorkflowID("taken"):
        DBOS.start_workflow(workflows.gated_workflow)
    workflows.gate.set()
    try:
        response = Client().post("/notes/?title=x", **{KEY: "taken"})
    finally:
        workflows.gate.clear()
    assert response.status_code == 409
    assert response.json()["error"] == "CONFLICTING_WORKFLOW"
    assert response.json()["workflow_id"] == "taken"


def test_atomic_requests_refuses_transactions_in_the_request(django_dbos: Any) -> None:
    settings_dict = connections["default"].settings_dict
    settings_dict["ATOMIC_REQUESTS"] = True
    logged: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: logged.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("dbos.integration").addHandler(handler)
    try:
        response = Client().post("/notes/inline/?title=atomic")
    finally:
        settings_dict["ATOMIC_REQUESTS"] = False
        logging.getLogger("dbos.integration").removeHandler(handler)
    assert response.status_code == 500
    assert response.json()["error"] == "DJANGO_OUTER_ATOMIC"
    # A 500 tells the client nothing more; the reason is in the log for the operator.
    assert "ATOMIC_REQUESTS" not in response.json()["message"]
    assert any("ATOMIC_REQUESTS" in line for line in logged)
    assert Note.objects.count() == 0


def test_start_on_commit_and_nothing_on_rollback(django_dbos: Any) -> None:
    client = Client()
    rolled = client.post("/notes/on-commit/?title=never&fail=1", **{KEY: "oc-rollback"})
    assert rolled.json() == {"rolled_back": True}
    assert DBOS.list_workflows() == []
    assert Note.objects.count() == 0

    committed = client.post("/notes/on-commit/?title=later", **{KEY: "oc-commit"})
    assert committed.json() == {"rolled_back": False}
    # The request's key (captured with its context) names the workflow started at commit.
    result = DBOS.retrieve_workflow("oc-commit").get_result()
    assert result["count"] == 2
    assert sorted(Note.objects.values_list("title", flat=True)) == ["direct", "later"]


def test_enqueue_on_commit_and_nothing_on_rollback(django_dbos: Any) -> None:
    from django.db import transaction

    import dbos_django
    from dbos_core import Queue

    queue = Queue("django_on_commit_queue")
    with pytest.raises(RuntimeError), transaction.atomic():
        Note.objects.create(title="outer-rolled-back")
        with SetWorkflowID("enq-rollback"):
            dbos_django.enqueue_on_commit(queue, workflows.note_workflow, "never")
        raise RuntimeError("roll back")
    assert DBOS.list_workflows() == []

    with transaction.atomic():
        Note.objects.create(title="outer-committed")
        with SetWorkflowID("enq-commit"):
            dbos_django.enqueue_on_commit(queue, workflows.note_workflow, "queued")
        # Nothing is enqueued before the block commits.
        assert DBOS.list_workflows() == []
    result = DBOS.retrieve_workflow("enq-commit").get_result(timeout=30)
    assert result["count"] == 2
    assert DBOS.retrieve_workflow("enq-commit").get_status().queue_name == "django_on_commit_queue"
    assert sorted(Note.objects.values_list("title", flat=True)) == ["outer-committed", "queued"]
