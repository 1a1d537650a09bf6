"""The workflow dashboard as an ASGI app to mount in FastAPI or Starlette.

    app.mount("/dbos", dashboard_app())                      # Starlette auth scopes
    app.mount("/dbos", dashboard_app(authorize=is_admin))    # or your own check

Who may open it is the app's authentication: by default a request whose user
Starlette's ``AuthenticationMiddleware`` authenticated and granted the scope
``dbos:dashboard``; pass ``authorize(connection) -> bool`` (sync or async) to decide
otherwise. Anonymous requests get a 401, authenticated ones without the right a 403.
State-changing forms carry the dashboard's own CSRF token (Starlette has none).
Pages render in the threadpool; live pages stream server-sent events without a thread.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection, Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from dbos_core.dashboard import Dashboard, DashboardRequest, DashboardResponse

Authorize = Callable[[HTTPConnection], bool | Awaitable[bool]]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

DEFAULT_SCOPE = "dbos:dashboard"
# Dashboard forms are a few fields; anything larger is not one of them.
MAX_BODY_BYTES = 64 * 1024


def _authenticated(connection: HTTPConnection) -> bool:
    user = connection.scope.get("user")
    return bool(user is not None and getattr(user, "is_authenticated", False))


def _has_scope(required: str) -> Authorize:
    def authorize(connection: HTTPConnection) -> bool:
        scopes = getattr(connection.scope.get("auth"), "scopes", None) or ()
        return _authenticated(connection) and required in scopes

    return authorize


class DashboardApp:
    """An ASGI app serving ``dbos_core.dashboard`` (see the module docstring)."""

    def __init__(
        self,
        *,
        authorize: Authorize | None = None,
        required_scope: str = DEFAULT_SCOPE,
        can_act: Authorize | None = None,
        live: bool = True,
    ) -> None:
        self.authorize = authorize or _has_scope(required_scope)
        self.can_act = can_act
        self.dashboard = Dashboard(live=live)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        response = await self._respond(request)
        await response(scope, receive, send)

    async def _check(self, check: Authorize, request: Request) -> bool:
        result = check(request)
        if inspect.isawaitable(result):
            result = await result
        return bool(result)

    async def _respond(self, request: Request) -> Response:
        if not await self._check(self.authorize, request):
            if not _authenticated(request):
                return PlainTextResponse("Sign in to see the DBOS dashboard", 401)
            return PlainTextResponse("You may not see the DBOS dashboard", 403)
        can_act = True if self.can_act is None else await self._check(self.can_act, request)
        declared = request.headers.get("content-length", "0")
        if not declared.isdigit() or int(declared) > MAX_BODY_BYTES:
            return PlainTextResponse("Request body too large", 413)
        body = await request.body() if request.method == "POST" else b""
        root = request.scope.get("root_path", "")
        path = request.url.path
        relative = path[len(root) :] if root and path.startswith(root) else path
        user = request.scope.get("user")
        viewer = getattr(user, "display_name", None) if user is not None else None
        result = await run_in_threadpool(
            self.dashboard.handle,
            DashboardRequest(
                method=request.method,
                path=relative or "/",
                base_path=root or "/",
                query_string=request.url.query,
                body=body,
                headers={k.lower(): v for k, v in request.headers.items()},
                cookies=dict(request.cookies),
                viewer=viewer or None,
                can_act=can_act,
            ),
        )
        return _starlette_response(result)


def _starlette_response(result: DashboardResponse) -> Response:
    response: Response
    if result.stream is not None:
        response = StreamingResponse(
            result.stream.iter_async(), result.status, media_type=result.content_type
        )
    else:
        response = Response(result.body, result.status, media_type=result.content_type)
    for name, value in result.headers:
        response.headers[name] = value
    for cookie in result.cookies:
        response.set_cookie(
            cookie.name,
            cookie.value,
            max_age=cookie.max_age,
            path=cookie.path,
            httponly=cookie.http_only,
            samesite="strict" if cookie.same_site == "Strict" else "lax",
            secure=cookie.secure,
        )
    return response


def dashboard_app(
    *,
    authorize: Authorize | None = None,
    required_scope: str = DEFAULT_SCOPE,
    can_act: Authorize | None = None,
    live: bool = True,
) -> DashboardApp:
    """The dashboard to ``app.mount("/dbos", ...)``; see the module docstring.

    ``can_act(connection)``: who may cancel, resume and fork (default: whoever may see).
    """
    return DashboardApp(
        authorize=authorize, required_scope=required_scope, can_act=can_act, live=live
    )
