"""``dbos_django.middleware.DBOSMiddleware``: one request scope per request.

- The idempotency-key header names the first workflow the request starts.
- ``request.user`` is read only when that workflow starts (so authentication done in
  the view, as in Django REST framework, is seen); its roles go with it.
- The scope is a context variable set for this request only: nothing leaks.
- DBOS errors raised by views become JSON responses with the error's HTTP status.
- In a server process DBOS launches on the first request (see lifecycle.py).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse

from dbos_core import integration
from dbos_core.error import DBOSException

from . import conf, lifecycle
from .users import make_resolver

logger = logging.getLogger("dbos.django")


class DBOSMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
        settings = conf.load()
        self.settings = settings
        self.key_header = "HTTP_" + settings.idempotency_header.upper().replace("-", "_")
        self.request_id_header = "HTTP_" + settings.request_id_header.upper().replace("-", "_")

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        try:
            request_ctx = self._request_context(request)
            lifecycle.ensure_launched_for_request()
        except DBOSException as exc:
            return self._refuse(exc)
        token = integration.enter_request_scope(request_ctx)
        try:
            return self.get_response(request)
        finally:
            integration.close_idempotency_key(request_ctx)
            integration.exit_request_scope(token)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        try:
            request_ctx = self._request_context(request)
            if not integration.is_launched():
                await sync_to_async(lifecycle.ensure_launched_for_request, thread_sensitive=False)()
        except DBOSException as exc:
            return self._refuse(exc)
        token = integration.enter_request_scope(request_ctx)
        try:
            response: Awaitable[HttpResponse] = self.get_response(request)
            return await response
        finally:
            integration.close_idempotency_key(request_ctx)
            integration.exit_request_scope(token)

    def _request_context(self, request: HttpRequest) -> integration.RequestContext:
        """The request's DBOS context; a malformed key or request id raises (a 400)."""
        return integration.open_request(
            idempotency_key=request.META.get(self.key_header),
            request_id=request.META.get(self.request_id_header),
            identity=make_resolver(request, self.settings.user_roles),
        )

    @staticmethod
    def _refuse(exc: DBOSException) -> JsonResponse:
        """A malformed key, or DBOS could not launch: answered before the view runs."""
        status, body = integration.error_response(exc)
        return JsonResponse(body, status=status)

    def process_exception(self, request: HttpRequest, exception: Exception) -> Any:
        if not self.settings.handle_errors or not isinstance(exception, DBOSException):
            return None
        status, body = integration.error_response(exception)
        logger.info("DBOS error answered as HTTP %s: %s", status, exception.code)
        return JsonResponse(body, status=status)
