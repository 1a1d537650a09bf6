"""Prometheus metrics of DBOS as a Django view, behind Django's own auth.

# urls.py
from dbos_django.metrics import metrics_view, render_metrics
urlpatterns = [path("metrics", metrics_view)]            # staff users only
# or behind your own check: path("metrics", my_token_required(render_metrics))
"""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from dbos_core import integration as seam
from dbos_core.error import DBOSException


@require_GET
def render_metrics(request: HttpRequest) -> HttpResponse:
    """The metrics, with no authentication of its own: wrap it in yours."""
    try:
        body, content_type = seam.metrics_exposition()
    except DBOSException as exc:
        status, payload = seam.error_response(exc)
        return JsonResponse(payload, status=status)
    return HttpResponse(body, content_type=content_type)


#: The metrics for logged-in staff users (others are sent to the admin login).
metrics_view = staff_member_required(render_metrics)
