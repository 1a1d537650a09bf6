"""The workflow dashboard as Django URLs, for staff only.

    urlpatterns = [
        path("admin/", admin.site.urls),
        path("dbos/", include("dbos_django.dashboard")),
    ]

Who may see it is Django's: an active staff user with the ``view`` (or ``change``)
permission on DBOS workflows (``dbos_django.view_workflow``; superusers have it);
anonymous visitors are sent to the admin's login page, others get a 403. Cancel,
resume and fork need ``dbos_django.change_workflow``. Forms carry Django's CSRF token
and ``CsrfViewMiddleware`` checks them. The Django admin's workflow pages link here
once these URLs are installed.

Live pages stream server-sent events; each open one holds a worker thread until the
browser leaves (at most ten minutes, then it reconnects). Set
``DBOS_DASHBOARD_LIVE = False`` in settings to serve snapshots only.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.middleware.csrf import get_token
from django.urls import NoReverseMatch, path, reverse

from dbos_core.dashboard import Dashboard, DashboardRequest, DashboardResponse

from . import lifecycle

app_name = "dbos_dashboard"
MAX_BODY_BYTES = 64 * 1024
VIEW_PERMISSIONS = ("dbos_django.view_workflow", "dbos_django.change_workflow")

_dashboards: dict[bool, Dashboard] = {}


def _dashboard() -> Dashboard:
    live = bool(getattr(settings, "DBOS_DASHBOARD_LIVE", True))
    if live not in _dashboards:
        _dashboards[live] = Dashboard(live=live)
    return _dashboards[live]


def may_view(user: Any) -> bool:
    return bool(
        user.is_authenticated
        and user.is_active
        and user.is_staff
        and any(user.has_perm(p) for p in VIEW_PERMISSIONS)
    )


def dashboard_url() -> str | None:
    """Where the dashboard is mounted, or None when its URLs are not installed."""
    try:
        return reverse(f"{app_name}:root")
    except NoReverseMatch:
        return None


def _login_url() -> str:
    try:
        return reverse("admin:login")
    except NoReverseMatch:
        return str(settings.LOGIN_URL)


def _django_response(result: DashboardResponse) -> HttpResponse | StreamingHttpResponse:
    response: HttpResponse | StreamingHttpResponse
    if result.stream is not None:
        response = StreamingHttpResponse(
            result.stream.iter_sync(), status=result.status, content_type=result.content_type
        )
    else:
        response = HttpResponse(result.body, status=result.status, content_type=result.content_type)
    for name, value in result.headers:
        response[name] = value
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


def serve(request: HttpRequest, subpath: str = "") -> HttpResponse | StreamingHttpResponse:
    user = request.user
    if not user.is_authenticated:
        return redirect_to_login(request.get_full_path(), _login_url())
    if not may_view(user):
        raise PermissionDenied
    if int(request.META.get("CONTENT_LENGTH") or 0) > MAX_BODY_BYTES:
        return HttpResponse("Request body too large", status=413, content_type="text/plain")
    lifecycle.ensure_launched_for_request()
    base = request.path[: len(request.path) - len(subpath)] if subpath else request.path
    headers = {k.lower(): v for k, v in request.headers.items()}
    headers["host"] = request.get_host()  # validated against ALLOWED_HOSTS
    result = _dashboard().handle(
        DashboardRequest(
            method=request.method or "GET",
            path="/" + subpath,
            base_path=base.rstrip("/") or "/",
            query_string=request.META.get("QUERY_STRING", ""),
            # The form as Django parsed it (CsrfViewMiddleware may have read the stream).
            body=urlencode(list(request.POST.items())).encode()
            if request.method == "POST"
            else b"",
            headers=headers,
            cookies=dict(request.COOKIES),
            viewer=user.get_username(),
            can_act=user.has_perm("dbos_django.change_workflow"),
            framework_csrf=True,
            csrf_fields={"csrfmiddlewaretoken": get_token(request)},
        )
    )
    return _django_response(result)


urlpatterns = [
    path("", serve, name="root"),
    path("<path:subpath>", serve, name="page"),
]
