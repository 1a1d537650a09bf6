"""The FastAPI/Starlette adapter of the durable-workflow suite.

``app.add_middleware(DBOSMiddleware)`` launches DBOS with the app, turns the
``dbos-idempotency-key`` header into the ID of the request's first workflow, records
the request id and the authenticated user on the workflows a request starts, and
answers DBOS errors with JSON (see README_SECTION.md).
"""

from __future__ import annotations

from .dashboard import dashboard_app
from .errors import error_json_response, install_exception_handlers
from .logs import RequestIdLogFilter
from .metrics import metrics_router
from .middleware import DBOSMiddleware
from .users import UserResolver, set_authenticated_user

__all__ = [
    "DBOSMiddleware",
    "RequestIdLogFilter",
    "UserResolver",
    "dashboard_app",
    "error_json_response",
    "install_exception_handlers",
    "metrics_router",
    "set_authenticated_user",
]
