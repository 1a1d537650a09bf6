"""Prometheus metrics of DBOS as a Flask blueprint, behind the application's own auth.

    app.register_blueprint(metrics_blueprint(protect=login_required))

``protect`` is required: a view decorator that authenticates (flask-login's
``login_required``, your token check), or an explicit ``None`` to serve the
metrics to anyone who can reach the route.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, jsonify

from dbos_core import integration as seam
from dbos_core.error import DBOSException

View = Callable[..., Any]


def metrics_view() -> Any:
    try:
        body, content_type = seam.metrics_exposition()
    except DBOSException as exc:
        status, payload = seam.error_response(exc)
        return jsonify(payload), status
    return Response(body, content_type=content_type)


def metrics_blueprint(
    *,
    protect: Callable[[View], View] | None,
    path: str = "/metrics",
    name: str = "dbos_metrics",
) -> Blueprint:
    blueprint = Blueprint(name, __name__)
    view = metrics_view if protect is None else protect(metrics_view)
    blueprint.add_url_rule(path, endpoint="metrics", view_func=view, methods=["GET"])
    return blueprint
