"""Prometheus metrics of DBOS as a FastAPI route, behind the application's own auth.

    app.include_router(metrics_router(dependencies=[Depends(require_operator)]))

``dependencies`` is required: pass your authentication dependency (or an explicit
empty list to serve the metrics to anyone who can reach the route).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter
from starlette.responses import JSONResponse, Response

from dbos_core import integration as seam
from dbos_core.error import DBOSException


def metrics_router(*, dependencies: Sequence[Any], path: str = "/metrics") -> APIRouter:
    router = APIRouter(dependencies=list(dependencies))

    @router.get(path, include_in_schema=False)
    def dbos_metrics() -> Response:
        # A plain def: FastAPI runs it in its threadpool (the scrape reads the database).
        try:
            body, content_type = seam.metrics_exposition()
        except DBOSException as exc:
            status, payload = seam.error_response(exc)
            return JSONResponse(payload, status_code=status)
        return Response(body, media_type=content_type)

    return router
