"""Each mount's own authentication, without a browser: the admin server's token and
session cookie, Starlette's auth scopes, a Flask ``authorize`` callable."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from flask import Flask
from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection
from starlette.routing import Mount
from starlette.testclient import TestClient

from dbos_core import DBOS, DBOSConfig, SetWorkflowID
from dbos_core.dashboard.admin_mount import session_valid, session_value
from dbos_fastapi import dashboard_app
from dbos_flask import dashboard_blueprint
from tests.dashboard.servers import free_port

TOKEN = "dashboard-admin-token"


@DBOS.workflow()
def dashmount_flow(x: int) -> int:
    return x


@pytest.fixture()
def admin(dbos_config: DBOSConfig) -> Iterator[str]:
    port = free_port()
    DBOS.destroy()
    DBOS(config={**dbos_config, "run_admin_server": True, "admin_port": port, "admin_token": TOKEN})
    DBOS.launch()
    with SetWorkflowID("dashmount-1"):
        dashmount_flow(1)
    yield f"http://127.0.0.1:{port}"
    DBOS.destroy()


def test_admin_server_dashboard_needs_the_token(admin: str) -> None:
    page = f"{admin}/dashboard/workflows"
    anonymous = httpx.get(page)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/dashboard/login?next=%2Fdashboard%2Fworkflows"
    assert httpx.post(f"{admin}/dashboard/workflows/dashmount-1/cancel").status_code == 401
    assert httpx.get(page, headers={"Host": "evil.example"}).status_code == 403
    wrong = httpx.post(f"{admin}/dashboard/login", data={"token": "guess"})
    assert wrong.status_code == 401 and "not the admin token" in wrong.text
    signed = httpx.post(f"{admin}/dashboard/login?next=/dashboard/workflows", data={"token": TOKEN})
    assert signed.status_code == 303 and signed.headers["location"] == "/dashboard/workflows"
    assert (
        "HttpOnly" in signed.headers["set-cookie"]
        and "SameSite=Strict" in signed.headers["set-cookie"]
    )
    with httpx.Client(base_url=admin, cookies=signed.cookies) as client:
        listing = client.get("/dashboard/workflows")
        assert listing.status_code == 200 and "dashmount-1" in listing.text
        # A form posted from another site is refused by the admin server's Origin check.
        cross = client.post(
            "/dashboard/workflows/dashmount-1/cancel", headers={"Origin": "http://evil.example"}
        )
        assert cross.status_code == 403
    bearer = httpx.get(page, headers={"Authorization": f"Bearer {TOKEN}"})
    assert bearer.status_code == 200
    # The JSON routes still want the token itself: the cookie is the dashboard's only.
    assert httpx.get(f"{admin}/workflows", cookies=signed.cookies).status_code == 401


def test_session_cookies_expire_and_die_with_the_token() -> None:
    now = time.time()
    value = session_value(TOKEN, int(now) + 60)
    assert session_valid(TOKEN, value, now)
    assert not session_valid(TOKEN, value, now + 61)
    assert not session_valid("another-token", value, now)
    assert not session_valid(TOKEN, value[:-1] + "0", now)
    assert not session_valid(TOKEN, "garbage", now)


class HeaderAuth(AuthenticationBackend):
    """Test stand-in: ``x-user`` names the user, ``x-scopes`` their scopes."""

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SimpleUser] | None:
        user = conn.headers.get("x-user")
        if not user:
            return None
        scopes = [s for s in conn.headers.get("x-scopes", "").split(",") if s]
        return AuthCredentials(["authenticated", *scopes]), SimpleUser(user)


def test_starlette_mount_follows_auth_scopes(dbos: type[DBOS]) -> None:
    with SetWorkflowID("dashmount-2"):
        dashmount_flow(2)
    readers: Any = lambda conn: "writer" in conn.auth.scopes  # noqa: E731
    app = Starlette(
        routes=[Mount("/ops", app=dashboard_app(can_act=readers))],
        middleware=[Middleware(AuthenticationMiddleware, backend=HeaderAuth())],
    )
    with TestClient(app, follow_redirects=False) as client:
        assert client.get("/ops/workflows").status_code == 401
        assert client.get("/ops/workflows", headers={"x-user": "ann"}).status_code == 403
        staff = {"x-user": "ann", "x-scopes": "dbos:dashboard"}
        page = client.get("/ops/workflows", headers=staff)
        assert page.status_code == 200 and "dashmount-2" in page.text and "ann" in page.text
        assert 'href="/ops/workflows/dashmount-2"' in page.text
        assert client.get("/ops/", headers=staff).headers["location"] == "/ops/workflows"
        token = page.cookies["dbos_dashboard_csrf"]
        form = {"csrf_token": token}
        cookies = {"dbos_dashboard_csrf": token}
        client.cookies.update(cookies)
        not_writer = client.post("/ops/workflows/dashmount-2/cancel", data=form, headers=staff)
        assert not_writer.status_code == 403
        writer = {**staff, "x-scopes": "dbos:dashboard,writer"}
        allowed = client.post("/ops/workflows/dashmount-2/resume", data=form, headers=writer)
        assert allowed.status_code == 303
    plain = Starlette(routes=[Mount("/ops", app=dashboard_app())])
    with TestClient(plain) as client:
        # No authentication middleware at all: nobody is let in.
        assert client.get("/ops/workflows").status_code == 401


def test_flask_blueprint_asks_the_app(dbos: type[DBOS]) -> None:
    with SetWorkflowID("dashmount-3"):
        dashmount_flow(3)
    app = Flask(__name__)
    app.register_blueprint(
        dashboard_blueprint(authorize=lambda: app.config.get("LET_IN") is True), url_prefix="/ops"
    )
    with app.test_client() as client:
        assert client.get("/ops/workflows").status_code == 401
        app.config["LET_IN"] = True
        page = client.get("/ops/workflows")
        assert page.status_code == 200 and b"dashmount-3" in page.data
        assert b'href="/ops/workflows/dashmount-3"' in page.data
        detail = client.get("/ops/workflows/dashmount-3")
        assert detail.status_code == 200 and b"dashmount_flow" in detail.data
    with pytest.raises(TypeError, match="needs a callable"):
        dashboard_blueprint(authorize=None)  # type: ignore[arg-type]
