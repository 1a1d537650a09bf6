"""DBOS errors as JSON HTTP responses: ``{"error": code, "message": ..., "workflow_id"?}``."""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dbos_core import integration
from dbos_core.error import DBOSException


def error_json_response(exc: DBOSException) -> JSONResponse:
    status, body = integration.error_response(exc)
    return JSONResponse(body, status_code=status)


def json_error_messages(exc: DBOSException) -> list[MutableMapping[str, Any]]:
    """The two ASGI messages of a JSON error response (for the pure-ASGI middleware)."""
    status, body = integration.error_response(exc)
    payload = json.dumps(body).encode("utf-8")
    return [
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode("ascii")),
            ],
        },
        {"type": "http.response.body", "body": payload},
    ]


async def _handle_dbos_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DBOSException)
    return error_json_response(exc)


def install_exception_handlers(app: Any) -> None:
    """Answer every ``DBOSException`` an endpoint raises with its JSON error response.

    Works on FastAPI and Starlette apps (anything with ``add_exception_handler``).
    """
    app.add_exception_handler(DBOSException, _handle_dbos_error)
