"""The workflow dashboard as a Flask blueprint.

    app.register_blueprint(
        dashboard_blueprint(authorize=lambda: current_user.is_authenticated and current_user.is_admin),
        url_prefix="/dbos",
    )

``authorize()`` runs in the request context and says who may see the dashboard; it is
required, because Flask has no notion of an administrator. When it refuses an
anonymous visitor and Flask-Login is set up, Flask-Login answers as it does for
``@login_required`` (a redirect to its login view, or 401); otherwise 401 for
anonymous visitors and 403 for the rest. ``can_act()`` (default: ``authorize``) says
who may cancel, resume and fork. CSRF: when Flask-WTF's ``CSRFProtect`` is installed
its token is used; otherwise the dashboard's own double-submit token.

Live pages stream server-sent events: each open one holds a worker thread of the
WSGI server until the browser leaves (at most ten minutes, then it reconnects).
Serve with threads (gunicorn ``--threads``, or ``--worker-class gthread``), or pass
``live=False``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, abort, current_app, request

from dbos_core.dashboard import Dashboard, DashboardRequest, DashboardResponse

MAX_BODY_BYTES = 64 * 1024


def _framework_csrf() -> dict[str, str] | None:
    """Flask-WTF's hidden field when its CSRFProtect guards the app, else None."""
    if "csrf" not in current_app.extensions:
        return None
    from flask_wtf.csrf import generate_csrf  # type: ignore[import-not-found, unused-ignore]

    return {"csrf_token": str(generate_csrf())}


def _anonymous() -> bool:
    if getattr(current_app, "login_manager", None) is None:
        return True
    from flask_login import current_user  # type: ignore[import-untyped, unused-ignore]

    return not getattr(current_user, "is_authenticated", False)


def _refuse() -> Any:
    manager = getattr(current_app, "login_manager", None)
    if _anonymous():
        if manager is not None:
            return manager.unauthorized()
        abort(401)
    abort(403)


def _viewer() -> str | None:
    if getattr(current_app, "login_manager", None) is None:
        return None
    from flask_login import current_user

    if not getattr(current_user, "is_authenticated", False):
        return None
    user_id = current_user.get_id()
    return None if user_id is None else str(user_id)


def _flask_response(result: DashboardResponse) -> Response:
    if result.stream is not None:
        response = Response(result.stream.iter_sync(), result.status, mimetype=None)
    else:
        response = Response(result.body, result.status)
    response.headers["Content-Type"] = result.content_type
    for name, value in result.headers:
        response.headers[name] = value
    for cookie in result.cookies:
        response.set_cookie(
            cookie.name,
            cookie.value,
            max_age=cookie.max_age,
            path=cookie.path,
            httponly=cookie.http_only,
            samesite=cookie.same_site,
            secure=cookie.secure,
        )
    return response


def dashboard_blueprint(
    *,
    authorize: Callable[[], bool],
    can_act: Callable[[], bool] | None = None,
    name: str = "dbos_dashboard",
    live: bool = True,
) -> Blueprint:
    """A blueprint serving the dashboard; register it with a ``url_prefix``."""
    if not callable(authorize):
        raise TypeError("dashboard_blueprint(authorize=...) needs a callable returning a bool")
    dashboard = Dashboard(live=live)
    blueprint = Blueprint(name, __name__)

    def serve(subpath: str = "") -> Any:
        if not authorize():
            return _refuse()
        if (request.content_length or 0) > MAX_BODY_BYTES:
            abort(413)
        framework_fields = _framework_csrf()
        prefix = request.path[: len(request.path) - len(subpath)] if subpath else request.path
        result = dashboard.handle(
            DashboardRequest(
                method=request.method,
                path="/" + subpath,
                base_path=request.script_root + prefix.rstrip("/"),
                query_string=request.query_string.decode("latin-1"),
                body=request.get_data() if request.method == "POST" else b"",
                headers={k.lower(): v for k, v in request.headers.items()},
                cookies=dict(request.cookies),
                viewer=_viewer(),
                can_act=authorize() if can_act is None else can_act(),
                framework_csrf=framework_fields is not None,
                csrf_fields=framework_fields or {},
            )
        )
        return _flask_response(result)

    blueprint.add_url_rule("/", "root", serve, methods=["GET", "POST"])
    blueprint.add_url_rule("/<path:subpath>", "page", serve, methods=["GET", "POST"])
    return blueprint
