"""The dashboard's Django URLs: staff only, Django's CSRF, linked from the admin."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from dbos_core import DBOS

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


@pytest.fixture()
def one_workflow(django_dbos: Any) -> str:
    bob = User.objects.create_user("bob")
    client = Client()
    client.force_login(bob)
    assert client.post("/notes/?title=one", HTTP_DBOS_IDEMPOTENCY_KEY="dash-wf").status_code == 200
    return "dash-wf"


def test_staff_only(one_workflow: str) -> None:
    anonymous = Client().get("/dbos/workflows")
    assert anonymous.status_code == 302
    assert anonymous["Location"] == "/admin/login/?next=/dbos/workflows"
    customer = Client()
    customer.force_login(User.objects.create_user("carol"))
    assert customer.get("/dbos/workflows").status_code == 403
    staff_without_permission = Client()
    staff_without_permission.force_login(User.objects.create_user("dan", is_staff=True))
    assert staff_without_permission.get("/dbos/workflows").status_code == 403
    viewer = User.objects.create_user("eve", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_workflow"))
    client = Client(enforce_csrf_checks=True)
    client.force_login(viewer)
    page = client.get("/dbos/workflows")
    assert page.status_code == 200 and one_workflow in page.content.decode()
    # A viewer may look, not act.
    token = client.cookies["csrftoken"].value
    refused = client.post(f"/dbos/workflows/{one_workflow}/resume", {"csrfmiddlewaretoken": token})
    assert refused.status_code == 403 and "may look at workflows here" in refused.content.decode()


def test_django_csrf_guards_actions(one_workflow: str) -> None:
    root = User.objects.create_superuser("root", "root@example.com", "pw")
    client = Client(enforce_csrf_checks=True)
    client.force_login(root)
    page = client.get(f"/dbos/workflows/{one_workflow}/fork?step=1").content.decode()
    assert 'name="csrfmiddlewaretoken"' in page  # Django's token in the dashboard's forms
    assert client.post(f"/dbos/workflows/{one_workflow}/resume").status_code == 403  # no token
    token = client.cookies["csrftoken"].value
    done = client.post(
        f"/dbos/workflows/{one_workflow}/fork",
        {"csrfmiddlewaretoken": token, "start_step": "1", "confirm": "yes"},
        HTTP_ORIGIN="http://testserver",
    )
    assert done.status_code == 303, done.content.decode()[-1500:]
    forked = done["Location"].split("/workflows/")[1].split("?")[0]
    assert DBOS.retrieve_workflow(forked).get_status().forked_from == one_workflow
    admin_list = client.get("/admin/dbos_django/workflow/").content.decode()
    assert 'id="dbos-dashboard-link" href="/dbos/workflows"' in admin_list
    admin_detail = client.get(f"/admin/dbos_django/workflow/{one_workflow}/").content.decode()
    assert f'href="/dbos/workflows/{one_workflow}"' in admin_detail
