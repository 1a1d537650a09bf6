"""The dashboard on the admin server, at ``/dashboard``.

Without ``admin_token`` the admin server listens on loopback only and so does the
dashboard (the same trust as the JSON routes). With a token, a browser cannot send
``Authorization: Bearer``, so ``/dashboard/login`` takes the token once and sets a
session cookie: ``<expiry>.<HMAC-SHA256(token, expiry)>``, HttpOnly, SameSite=Strict,
valid for ``SESSION_SECONDS`` and void as soon as the token changes. The admin
server's Host and Origin checks apply to every dashboard route as to the others.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from http.cookies import CookieError, SimpleCookie
from typing import TYPE_CHECKING

from ..admin_http import AdminRequest, AdminResponse, RouteTable
from .app import Dashboard
from .context import asset_version
from .html import Markup, esc, render, url
from .http import Cookie, DashboardRequest, DashboardResponse

if TYPE_CHECKING:
    from ..runtime.runtime import Runtime

MOUNT = "/dashboard"
SESSION_COOKIE = "dbos_dashboard_session"
SESSION_SECONDS = 12 * 3600
# Dashboard paths have at most this many segments after /dashboard.
_MAX_DEPTH = 4


def _cookies(request: AdminRequest) -> dict[str, str]:
    jar = SimpleCookie()
    try:
        jar.load(request.headers.get("cookie", ""))
    except CookieError:
        return {}
    return {name: morsel.value for name, morsel in jar.items()}


def session_value(token: str, expires: int) -> str:
    mac = hmac.new(token.encode(), f"dbos-dashboard:{expires}".encode(), hashlib.sha256)
    return f"{expires}.{mac.hexdigest()}"


def session_valid(token: str, value: str, now: float | None = None) -> bool:
    expires_text, _sep, _mac = value.partition(".")
    if not expires_text.isdigit():
        return False
    expires = int(expires_text)
    if expires < (now if now is not None else time.time()):
        return False
    return hmac.compare_digest(value, session_value(token, expires))


class AdminDashboard:
    def __init__(self, rt: Runtime, token: str | None) -> None:
        self.dashboard = Dashboard(rt)
        self.token = token

    def signed_in(self, request: AdminRequest) -> bool:
        if self.token is None:
            return True
        bearer = request.headers.get("authorization", "")
        if hmac.compare_digest(bearer.encode(), f"Bearer {self.token}".encode()):
            return True
        return session_valid(self.token, _cookies(request).get(SESSION_COOKIE, ""))

    def accepts(self, request: AdminRequest) -> bool:
        """The route-level credential check, from the head: a GET page without a session
        is let through to be redirected to the login form; a POST needs the session."""
        if request.method == "GET":
            return True
        return self.signed_in(request)

    def handle(self, request: AdminRequest) -> AdminResponse:
        path = request.path[len(MOUNT) :] or "/"
        if path.rstrip("/") == "/login":
            return self._login(request)
        if not path.startswith("/static/") and not self.signed_in(request):
            target = url(MOUNT, "login", next=request.path)
            return AdminResponse(303, b"", "text/plain", [("Location", target)])
        response = self.dashboard.handle(
            DashboardRequest(
                method=request.method,
                path=path,
                base_path=MOUNT,
                query_string=request.query,
                body=request.body,
                headers=request.headers,
                cookies=_cookies(request),
                viewer="admin" if self.token is not None else None,
            )
        )
        return to_admin_response(response)

    def _login(self, request: AdminRequest) -> AdminResponse:
        params = DashboardRequest("GET", "/", MOUNT, query_string=request.query).query()
        target = params.get("next", "")
        if not target.startswith(MOUNT + "/") or target.startswith(MOUNT + "/login"):
            target = MOUNT + "/workflows"
        if self.token is None:
            return AdminResponse(303, b"", "text/plain", [("Location", target)])
        error = ""
        if request.method == "POST":
            form = DashboardRequest("POST", "/", MOUNT, body=request.body).form()
            given = form.get("token", "")
            if hmac.compare_digest(given.encode(), self.token.encode()):
                expires = int(time.time()) + SESSION_SECONDS
                cookie = Cookie(
                    SESSION_COOKIE, session_value(self.token, expires), MOUNT, SESSION_SECONDS
                )
                return AdminResponse(
                    303,
                    b"",
                    "text/plain",
                    [("Location", target), ("Set-Cookie", cookie.header_value())],
                )
            error = "That is not the admin token."
        body = render(
            "login.html",
            css=url(MOUNT, "static", "dashboard.css", v=asset_version()),
            action=url(MOUNT, "login", next=target),
            error=Markup(f'<p class="problem" role="alert">{esc(error)}</p>') if error else "",
        )
        return AdminResponse(401 if error else 200, body.encode(), "text/html; charset=utf-8")


def to_admin_response(response: DashboardResponse) -> AdminResponse:
    headers = list(response.headers)
    headers.extend(("Set-Cookie", c.header_value()) for c in response.cookies)
    stream = response.stream.iter_sync() if response.stream is not None else None
    return AdminResponse(response.status, response.body, response.content_type, headers, stream)


def add_dashboard_routes(routes: RouteTable, rt: Runtime, token: str | None) -> None:
    mounted = AdminDashboard(rt, token)
    # The login form takes the token itself (found first: routes match in order).
    for method in ("GET", "POST"):
        routes.add(method, MOUNT + "/login", mounted.handle, accepts=lambda _request: True)
    pattern = MOUNT
    for depth in range(_MAX_DEPTH + 1):
        for method in ("GET", "POST"):
            routes.add(method, pattern, mounted.handle, accepts=mounted.accepts)
        pattern += f"/{{p{depth}}}"
