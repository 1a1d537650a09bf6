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
import uuid
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
        lifecycle.ensure_launched_for_request()
        request_ctx = self._request_context(request)
        token = integration.enter_request_scope(request_ctx)
        try:
            return self.get_response(request)
        finally:
            integration.close_idempotency_key(request_ctx)
            integration.exit_request_scope(token)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        if not integration.is_launched():
            await sync_to_async(lifecycle.ensure_launched_for_request, thread_sensitive=False)()
        request_ctx = self._request_context(request)
        token = integration.enter_request_scope(request_ctx)
        try:
            response: Awaitable[HttpResponse] = self.get_response(request)
            return await response
        finally:
            integration.close_idempotency_key(request_ctx)
            integration.exit_request_scope(token)

    def _request_context(self, request: HttpRequest) -> integration.RequestContext:
        meta = request.META
        key = (meta.get(self.key_header) or "").strip() or None
        request_id = (meta.get(self.request_id_header) or "").strip() or uuid.uuid4().hex
        return integration.new_request_context(
            idempotency_key=key,
            request_id=request_id,
            user_resolver=make_resolver(request, self.settings.user_roles),
        )

    def process_exception(self, request: HttpRequest, exception: Exception) -> Any:
        if not self.settings.handle_errors or not isinstance(exception, DBOSException):
            return None
        status, body = integration.error_response(exception)
        logger.info("DBOS error answered as HTTP %s: %s", status, exception)
        return JsonResponse(body, status=status)
