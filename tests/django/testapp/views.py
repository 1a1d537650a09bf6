from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

import dbos_django
from dbos_core import DBOS, DBOSClient

from .models import Note
from .workflows import gated_workflow, note_workflow


def _authenticate_in_view(request: HttpRequest) -> None:
    """What Django REST framework does: the user is set by the view, after middleware."""
    name = request.headers.get("X-Test-User")
    if name:
        request.user = get_user_model().objects.get(username=name)


async def _aauthenticate_in_view(request: HttpRequest) -> None:
    name = request.headers.get("X-Test-User")
    if name:
        request.user = await get_user_model().objects.aget(username=name)


@csrf_exempt
def start_note(request: HttpRequest) -> JsonResponse:
    _authenticate_in_view(request)
    title = request.GET.get("title", "untitled")
    handle = DBOS.start_workflow(note_workflow, title, request.GET.get("fail") == "1")
    return JsonResponse(handle.get_result())


@csrf_exempt
def call_note_inline(request: HttpRequest) -> JsonResponse:
    """Calls the workflow in the request thread (so ATOMIC_REQUESTS wraps its transaction)."""
    return JsonResponse(note_workflow(request.GET.get("title", "inline")))


@csrf_exempt
async def start_note_async(request: HttpRequest) -> JsonResponse:
    await _aauthenticate_in_view(request)
    handle = await DBOS.start_workflow_async(note_workflow, request.GET.get("title", "async"))
    return JsonResponse(await handle.get_result())


@csrf_exempt
def note_on_commit(request: HttpRequest) -> JsonResponse:
    """Saves a note and starts a workflow when the block commits; fail=1 rolls back."""
    started: dict[str, Any] = {}
    try:
        with transaction.atomic():
            Note.objects.create(title="direct")
            dbos_django.start_workflow_on_commit(note_workflow, request.GET.get("title", "oc"))
            started["pending"] = True
            if request.GET.get("fail") == "1":
                raise RuntimeError("roll back")
    except RuntimeError:
        return JsonResponse({"rolled_back": True})
    return JsonResponse({"rolled_back": False})


@csrf_exempt
def gated(request: HttpRequest) -> JsonResponse:
    """Starts gated_workflow (held until the test opens the gate) for the request's user."""
    _authenticate_in_view(request)
    handle = DBOS.start_workflow(gated_workflow)
    return JsonResponse({"workflow_id": handle.get_workflow_id(), "result": handle.get_result()})


def unreachable(request: HttpRequest) -> JsonResponse:
    """A DBOS call that cannot reach its database: the error names host, user and database."""
    with DBOSClient("postgresql://secretuser:pw@127.0.0.1:1/secretdb"):
        return JsonResponse({})
