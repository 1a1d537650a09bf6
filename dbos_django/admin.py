"""Workflows in the Django admin: a read-only list with filters, the steps of one
workflow, and cancel / resume actions. Backed by DBOS (no table of our own).

Inputs, outputs and errors are shown through the seam's operator views, which never
unpickle what they read; ``settings.DBOS['admin_deserialize_values'] = True`` is the
documented opt-in to decode them with the application's serializer."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from dbos_core import integration
from dbos_core.error import DBOSException
from dbos_core.types import ALL_STATUSES

from . import lifecycle, management_api
from .models import Workflow

PAGE_SIZE = 50


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[Any]:
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        wrap = self.admin_site.admin_view
        return [
            path("", wrap(self.list_view), name=f"{prefix}_changelist"),
            path(
                "<path:workflow_id>/cancel/",
                wrap(require_POST(self.cancel_view)),
                name=f"{prefix}_cancel",
            ),
            path(
                "<path:workflow_id>/resume/",
                wrap(require_POST(self.resume_view)),
                name=f"{prefix}_resume",
            ),
            path("<path:workflow_id>/", wrap(self.detail_view), name=f"{prefix}_change"),
        ]

    def _context(self, request: HttpRequest, title: str) -> dict[str, Any]:
        from .dashboard import dashboard_url

        return {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "has_change_permission": self.has_change_permission(request),
            # The live dashboard, when the project installed dbos_django.dashboard's URLs.
            "dashboard_url": dashboard_url(),
        }

    def list_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        lifecycle.ensure_launched_for_request()
        filters = {
            key: (request.GET.get(key) or "").strip() for key in ("status", "name", "queue", "user")
        }
        try:
            page = max(int(request.GET.get("page", "1")), 1)
        except ValueError:
            page = 1
        query: dict[str, Any] = {"sort_desc": True}
        if filters["status"] in ALL_STATUSES:
            query["status"] = filters["status"]
        if filters["name"]:
            query["name"] = filters["name"]
        if filters["user"]:
            query["user"] = filters["user"]
        if filters["queue"]:
            query["queue_name"] = filters["queue"]
        # The operator views never unpickle what they read (see dbos_core.safe_display).
        rows = integration.workflow_views(
            deserialize=None, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE, **query
        )
        has_next = len(rows) > PAGE_SIZE
        context = self._context(request, "Workflows")
        context.update(
            {
                "workflows": [_row(w) for w in rows[:PAGE_SIZE]],
                "filters": filters,
                "statuses": sorted(ALL_STATUSES),
                "page": page,
                "previous_query": _page_query(filters, page - 1) if page > 1 else None,
                "next_query": _page_query(filters, page + 1) if has_next else None,
            }
        )
        return TemplateResponse(request, "admin/dbos_django/workflow_list.html", context)

    def detail_view(self, request: HttpRequest, workflow_id: str) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        lifecycle.ensure_launched_for_request()
        try:
            view = integration.workflow_view(workflow_id, deserialize=None)
            steps = integration.step_views(workflow_id, deserialize=None)
        except DBOSException:
            messages.error(request, f"No workflow with ID {workflow_id!r}")
            return HttpResponseRedirect(reverse("admin:dbos_django_workflow_changelist"))
        context = self._context(request, f"Workflow {workflow_id}")
        context.update(
            {
                "workflow": _row(view),
                "fields": [(k, v) for k, v in view.items() if v not in (None, "")],
                "steps": [
                    {key: "" if value is None else value for key, value in s.items()} for s in steps
                ],
                "can_cancel": view["status"] in ("PENDING", "ENQUEUED"),
                "can_resume": view["status"]
                in ("PENDING", "ENQUEUED", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED", "ERROR"),
            }
        )
        return TemplateResponse(request, "admin/dbos_django/workflow_detail.html", context)

    def _action(self, request: HttpRequest, workflow_id: str, verb: str) -> HttpResponse:
        if not self.has_change_permission(request):
            raise PermissionDenied
        lifecycle.ensure_launched_for_request()
        try:
            if verb == "cancel":
                management_api.cancel_workflow(workflow_id)
            else:
                management_api.resume_workflow(workflow_id)
        except DBOSException as exc:
            messages.error(request, f"Could not {verb} {workflow_id}: {exc}")
        else:
            done = "cancelled" if verb == "cancel" else "resumed"
            messages.success(request, f"Workflow {workflow_id} {done}")
        return HttpResponseRedirect(
            reverse("admin:dbos_django_workflow_change", args=[workflow_id])
        )

    def cancel_view(self, request: HttpRequest, workflow_id: str) -> HttpResponse:
        return self._action(request, workflow_id, "cancel")

    def resume_view(self, request: HttpRequest, workflow_id: str) -> HttpResponse:
        return self._action(request, workflow_id, "resume")


def _row(view: dict[str, Any]) -> dict[str, Any]:
    return {
        "workflow_id": view["workflow_id"],
        "status": view["status"],
        "name": view["name"],
        "user": view["authenticated_user"] or "",
        "queue": view["queue_name"] or "",
        "created_at": view["created_at"] or "",
        "updated_at": view["updated_at"] or "",
    }


def _page_query(filters: dict[str, str], page: int) -> str:
    from urllib.parse import urlencode

    return urlencode({**{k: v for k, v in filters.items() if v}, "page": page})
