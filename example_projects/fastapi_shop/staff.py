"""Staff sign-in, and the DBOS workflow dashboard behind it at ``/dbos``.

A stand-in for real authentication: one staff password from ``SHOP_STAFF_PASSWORD``.
Signing in at ``/staff/login`` sets an HttpOnly cookie; Starlette's
``AuthenticationMiddleware`` turns it into an authenticated user with the scope
``dbos:dashboard``, which is what ``dbos_fastapi.dashboard_app()`` asks for.
Without the variable the dashboard is not mounted.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import logging
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection

from dbos_fastapi import dashboard_app

log = logging.getLogger("shop")
COOKIE = "shop_staff"


def _cookie_value(password: str) -> str:
    return hmac.new(password.encode(), b"shop-staff-session", hashlib.sha256).hexdigest()


class StaffCookie(AuthenticationBackend):
    def __init__(self, password: str) -> None:
        self.expected = _cookie_value(password)

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SimpleUser] | None:
        given = conn.cookies.get(COOKIE, "")
        if given and hmac.compare_digest(given, self.expected):
            return AuthCredentials(["authenticated", "dbos:dashboard"]), SimpleUser("staff")
        return None


LOGIN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Staff sign-in</title></head>
<body><main><h1>Shop staff</h1>{error}
<form method="post"><label for="password">Staff password</label>
<input id="password" name="password" type="password" required autofocus>
<button type="submit">Sign in</button></form></main></body></html>"""


def install(app: FastAPI, password: str | None) -> None:
    """Mount the dashboard at /dbos behind the staff sign-in (nothing without a password)."""
    if not password:
        log.info("Dashboard not mounted: set SHOP_STAFF_PASSWORD to serve it at /dbos")
        return
    app.add_middleware(AuthenticationMiddleware, backend=StaffCookie(password))

    @app.get("/staff/login", response_class=HTMLResponse)
    def login_form() -> str:
        return LOGIN_PAGE.format(error="")

    @app.post("/staff/login")
    async def login(request: Request) -> Response:
        fields = parse_qs((await request.body()).decode("utf-8", "replace"))
        given = (fields.get("password") or [""])[-1]
        if not hmac.compare_digest(given.encode(), password.encode()):
            error = f"<p role='alert'>{html.escape('Wrong password.')}</p>"
            return HTMLResponse(LOGIN_PAGE.format(error=error), status_code=401)
        response = RedirectResponse("/dbos/", status_code=303)
        response.set_cookie(COOKIE, _cookie_value(password), httponly=True, samesite="strict")
        return response

    app.mount("/dbos", dashboard_app())
