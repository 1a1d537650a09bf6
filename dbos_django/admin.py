"""Workflows in the Django admin: a read-only list with filters, the steps of one
workflow, and cancel / resume actions. Backed by DBOS (no table of our own)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from dbos_core import DBOS
from dbos_core.error import DBOSException
from dbos_core.types import ALL_STATUSES, ms_to_rfc3339

from . import lifecycle, management_api
from .models import Workflow

PAGE_SIZE = 50
# Without a queue filter in DBOS.list_workflows, a queue filter scans this many at most.
QUEUE_SCAN_LIMIT = 2000


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
        return {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "has_change_permission": self.has_change_permission(request),
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
        query: dict[str, Any] = {"sort_desc": True, "load_input": False, "load_output": False}
        if filters["status"] in ALL_STATUSES:
            query["status"] = filters["status"]
        if filters["name"]:
            query["name"] = filters["name"]
        if filters["user"]:
            query["user"] = filters["user"]
        if filters["queue"]:
            found = DBOS.list_workflows(limit=QUEUE_SCAN_LIMIT, **query)
            found = [w for w in found if w.queue_name == filters["queue"]]
            rows = found[(page - 1) * PAGE_SIZE : page * PAGE_SIZE + 1]
        else:
            rows = DBOS.list_workflows(limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE, **query)
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
        found = DBOS.list_workflows(workflow_ids=[workflow_id])
        if not found:
            messages.error(request, f"No workflow with ID {workflow_id!r}")
            return HttpResponseRedirect(reverse("admin:dbos_django_workflow_changelist"))
        status = found[0]
        steps = DBOS.list_workflow_steps(workflow_id)
        context = self._context(request, f"Workflow {workflow_id}")
        context.update(
            {
                "workflow": _row(status),
                "fields": [(k, v) for k, v in status.to_dict().items() if v not in (None, "")],
                "steps": [
                    {
                        "function_id": s["function_id"],
                        "function_name": s["function_name"],
                        "output": "" if s["output"] is None else repr(s["output"]),
                        "error": "" if s["error"] is None else repr(s["error"]),
                        "child_workflow_id": s["child_workflow_id"] or "",
                    }
                    for s in steps
                ],
                "can_cancel": status.status in ("PENDING", "ENQUEUED"),
                "can_resume": status.status
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


def _row(w: Any) -> dict[str, Any]:
    return {
        "workflow_id": w.workflow_id,
        "status": w.status,
        "name": w.name,
        "user": w.authenticated_user or "",
        "queue": w.queue_name or "",
        "created_at": ms_to_rfc3339(w.created_at) or "",
        "updated_at": ms_to_rfc3339(w.updated_at) or "",
    }


def _page_query(filters: dict[str, str], page: int) -> str:
    from urllib.parse import urlencode

    return urlencode({**{k: v for k, v in filters.items() if v}, "page": page})
