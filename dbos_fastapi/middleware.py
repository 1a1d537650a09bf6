"""``DBOSMiddleware``: a pure ASGI middleware that ties DBOS to a Starlette/FastAPI app.

- lifespan: launch DBOS after the app's own startup, destroy it after the app's own
  shutdown, in a thread so the event loop keeps running;
- http/websocket: a request scope (idempotency key, request id, lazily resolved user)
  held in a context variable for exactly this request;
- DBOS errors that escape the app before a response started become JSON responses.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from dbos_core import DBOS, DBOSConfig, integration
from dbos_core.error import DBOSException

from .errors import json_error_messages
from .users import UserResolver, resolve_identity

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

logger = logging.getLogger("dbos.fastapi")


class DBOSMiddleware:
    """Add with ``app.add_middleware(DBOSMiddleware, ...)``.

    ``config``: if given and DBOS is not configured when the app starts, the middleware
    calls ``DBOS(config=config)`` itself (in each worker process, after any fork).
    ``launch``: set False when the app launches and destroys DBOS on its own.
    ``idempotency_header``: the request header whose value becomes the ID of the first
    workflow the request starts. ``request_id_header``: the header read as the request id
    (one is generated when it is missing). ``user_resolver``: called with the request's
    ``HTTPConnection`` when its first workflow starts; returns None, a user name,
    ``(user, roles)`` or ``(user, roles, assumed_role)``. Without it the user comes from
    Starlette's ``AuthenticationMiddleware``. ``handle_errors``: turn DBOS errors into
    JSON responses (see ``install_exception_handlers`` to do it inside the app).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        config: DBOSConfig | None = None,
        launch: bool = True,
        idempotency_header: str = integration.DEFAULT_IDEMPOTENCY_HEADER,
        request_id_header: str = integration.DEFAULT_REQUEST_ID_HEADER,
        user_resolver: UserResolver | None = None,
        handle_errors: bool = True,
    ) -> None:
        if not idempotency_header or not request_id_header:
            raise ValueError("DBOSMiddleware: header names must be non-empty strings")
        if user_resolver is not None and not callable(user_resolver):
            raise TypeError(
                f"DBOSMiddleware: user_resolver must be callable, got {user_resolver!r}"
            )
        self.app = app
        self.config = config
        self.launch = launch
        self.idempotency_header = idempotency_header.lower().encode("latin-1")
        self.request_id_header = request_id_header.lower().encode("latin-1")
        self.user_resolver = user_resolver
        self.handle_errors = handle_errors
        # True while DBOS runs because this middleware launched it (so it destroys it).
        self._launched_here = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(scope, receive, send)
        elif kind in ("http", "websocket"):
            await self._request(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    # -- lifespan ---------------------------------------------------------------------

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_after_dbos(message: Message) -> None:
            kind = message["type"]
            if kind == "lifespan.startup.complete" and self.launch:
                # If this raises, the app's lifespan unwinds (its shutdown code runs) and
                # the app reports lifespan.startup.failed with our error.
                await asyncio.to_thread(self._start_dbos)
            elif kind in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await asyncio.to_thread(self._stop_dbos)
            await send(message)

        await self.app(scope, receive, send_after_dbos)

    def _start_dbos(self) -> None:
        def configure() -> None:
            if not integration.is_configured():
                if self.config is None:
                    raise DBOSException(
                        "DBOS is not configured: call DBOS(config=...) before the app starts, "
                        "or pass config=... to DBOSMiddleware"
                    )
                DBOS(config=self.config)

        # False when the app launched DBOS itself (in its lifespan or before the server).
        self._launched_here = integration.ensure_launched(configure)

    def _stop_dbos(self) -> None:
        if self._launched_here:
            self._launched_here = False
            integration.destroy_launched()

    # -- requests ---------------------------------------------------------------------

    async def _request(self, scope: Scope, receive: Receive, send: Send) -> None:
        key: bytes | None = None
        request_id: bytes | None = None
        for name, value in scope.get("headers", ()):
            if name == self.idempotency_header:
                key = value
            elif name == self.request_id_header:
                request_id = value
        try:
            request_ctx = integration.open_request(
                idempotency_key=key,
                request_id=request_id,
                identity=lambda: resolve_identity(scope, self.user_resolver),
            )
        except DBOSException as exc:
            # A malformed key or request id: refused before the app sees the request.
            await self._refuse(scope, send, exc)
            return
        response_started = False

        async def send_tracking(message: Message) -> None:
            nonlocal response_started
            kind = message["type"]
            if kind in ("http.response.start", "websocket.accept", "websocket.http.response.start"):
                response_started = True
            elif kind == "http.response.body" and not message.get("more_body", False):
                # Background tasks run after this, still inside the app call: they must
                # not inherit the request's idempotency key.
                integration.close_idempotency_key(request_ctx)
            await send(message)

        token = integration.enter_request_scope(request_ctx)
        try:
            await self.app(scope, receive, send_tracking)
        except DBOSException as exc:
            if not self.handle_errors or response_started or scope["type"] != "http":
                raise
            logger.info("DBOS error answered as HTTP %s: %s", exc.http_status, exc.code)
            for message in json_error_messages(exc):
                await send(message)
        finally:
            integration.close_idempotency_key(request_ctx)
            integration.exit_request_scope(token)

    @staticmethod
    async def _refuse(scope: Scope, send: Send, exc: DBOSException) -> None:
        if scope["type"] == "http":
            for message in json_error_messages(exc):
                await send(message)
        else:  # a websocket handshake: refuse it (1008: policy violation)
            await send({"type": "websocket.close", "code": 1008, "reason": exc.code})
