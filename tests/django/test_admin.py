"""The admin: workflow list with filters, one workflow's steps, cancel and resume."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from dbos_core import DBOS, SetWorkflowID
from tests.django.testapp import workflows
from tests.django.testapp.models import Note

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

LIST = "/admin/dbos_django/workflow/"


@pytest.fixture()
def admin_client() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return client


@pytest.fixture()
def some_workflows(django_dbos: Any) -> None:
    bob = User.objects.create_user("bob")
    client = Client()
    client.force_login(bob)
    assert client.post("/notes/?title=one", HTTP_DBOS_IDEMPOTENCY_KEY="wf-ok").status_code == 200
    response = Client(raise_request_exception=False).post(
        "/notes/?title=two&fail=1", HTTP_DBOS_IDEMPOTENCY_KEY="wf-bad"
    )
    assert response.status_code == 500


def test_index_and_list_render(admin_client: Client, some_workflows: None) -> None:
    index = admin_client.get("/admin/")
    assert index.status_code == 200
    assert LIST in index.content.decode()
    page = admin_client.get(LIST).content.decode()
    assert "wf-ok" in page and "wf-bad" in page
    assert "SUCCESS" in page and "ERROR" in page


@pytest.mark.parametrize(
    ("query", "shown", "hidden"),
    [
        ("status=SUCCESS", "wf-ok", "wf-bad"),
        ("status=ERROR", "wf-bad", "wf-ok"),
        ("user=bob", "wf-ok", "wf-bad"),
        ("name=nothing.like.this", None, "wf-ok"),
        ("queue=no-such-queue", None, "wf-ok"),
    ],
)
def test_filters(
    admin_client: Client, some_workflows: None, query: str, shown: str | None, hidden: str
) -> None:
    page = admin_client.get(f"{LIST}?{query}").content.decode()
    if shown is not None:
        assert shown in page
    else:
        assert "No workflows match." in page
    assert f">{hidden}<" not in page


def test_name_filter_matches(admin_client: Client, some_workflows: None) -> None:
    name = DBOS.retrieve_workflow("wf-ok").get_status().name
    page = admin_client.get(LIST, {"name": name}).content.decode()
    assert "wf-ok" in page and "wf-bad" in page  # same workflow function


def test_detail_shows_steps(admin_client: Client, some_workflows: None) -> None:
    page = admin_client.get(f"{LIST}wf-ok/").content.decode()
    assert "save_note" in page and "describe" in page
    assert "1 note(s)" in page
    bad = admin_client.get(f"{LIST}wf-bad/").content.decode()
    assert "refusing note" in bad
    missing = admin_client.get(f"{LIST}nope/", follow=True)
    assert "No workflow with ID" in missing.content.decode()


def test_cancel_and_resume_actions(admin_client: Client, django_dbos: Any) -> None:
    with SetWorkflowID("wf-gated"):
        handle = DBOS.start_workflow(workflows.gated_workflow)
    try:
        page = admin_client.get(f"{LIST}wf-gated/").content.decode()
        assert "Cancel workflow" in page
        response = admin_client.post(f"{LIST}wf-gated/cancel/", follow=True)
        assert "cancelled" in response.content.decode()
        assert handle.get_status().status == "CANCELLED"
    finally:
        workflows.gate.set()
    # The cancelled execution stops at its next step; resume once it has.
    runtime = django_dbos._current._runtime
    deadline = time.monotonic() + 30
    while runtime.is_active("wf-gated") and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        response = admin_client.post(f"{LIST}wf-gated/resume/", follow=True)
        assert "resumed" in response.content.decode()
        assert DBOS.retrieve_workflow("wf-gated").get_result() == "passed+done"
        assert handle.get_status().status == "SUCCESS"
    finally:
        workflows.gate.clear()
    # Actions are POST-only.
    assert admin_client.get(f"{LIST}wf-gated/cancel/").status_code == 405


def test_permissions(django_dbos: Any) -> None:
    anonymous = Client().get(LIST)
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    staff = User.objects.create_user("viewer", is_staff=True)
    client = Client()
    client.force_login(staff)
    assert client.get(LIST).status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="view_workflow"))
    client.force_login(User.objects.get(pk=staff.pk))
    assert client.get(LIST).status_code == 200
    # Viewing is not changing: no cancel for a view-only user.
    assert client.post(f"{LIST}whatever/cancel/").status_code == 403
    assert Note.objects.count() == 0


def test_a_crafted_pickle_is_listed_without_running_it(
    admin_client: Client, django_dbos: Any, tmp_path: Path
) -> None:
    from dbos_core.runtime import global_state
    from tests.core.crafted_pickle import CRAFTED_ID, write_crafted_workflow

    marker = tmp_path / "pwned"
    write_crafted_workflow(global_state.get_runtime().sysdb.db, marker)
    listing = admin_client.get(LIST)
    assert listing.status_code == 200 and CRAFTED_ID in listing.content.decode()
    for query in ("status=ERROR", "user=&name=app.harmless_looking"):
        assert CRAFTED_ID in admin_client.get(f"{LIST}?{query}").content.decode()
    detail = admin_client.get(f"{LIST}{CRAFTED_ID}/")
    assert detail.status_code == 200
    page = detail.content.decode()
    # The input, output, error and step output are summaries naming what they would import.
    assert page.count("references io.open") >= 5
    assert not marker.exists()


def test_values_of_the_app_are_shown_safely(admin_client: Client, some_workflows: None) -> None:
    page = admin_client.get(f"{LIST}wf-ok/").content.decode()
    # The output dict is a summary (HTML-escaped); a plain string step output is exact.
    assert "&lt;pickle, " in page and "&#x27;1 note(s)&#x27;" in page
    assert "&#x27;summary&#x27;" not in page


@pytest.mark.parametrize(
    "dbos_test_config", [{"application_version": "test", "admin_deserialize_values": True}]
)
def test_values_are_decoded_on_the_documented_opt_in(
    admin_client: Client, some_workflows: None
) -> None:
    assert (
        "&#x27;summary&#x27;: &#x27;1 note(s)&#x27;"
        in admin_client.get(f"{LIST}wf-ok/").content.decode()
    )
