from __future__ import annotations

import json

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from dbos_core import DBOS

from .workflows import publish_note


@csrf_exempt
@require_POST
def create_note(request: HttpRequest) -> JsonResponse:
    """Start publishing a note; send `dbos-idempotency-key` to make retries safe."""
    data = json.loads(request.body or b"{}")
    title, body = str(data.get("title", "")).strip(), str(data.get("body", ""))
    if not title:
        return JsonResponse({"error": "title is required"}, status=400)
    handle = DBOS.start_workflow(publish_note, title, body)
    return JsonResponse({"workflow_id": handle.get_workflow_id()}, status=202)


@require_GET
def note_status(request: HttpRequest, workflow_id: str) -> JsonResponse:
    status = DBOS.retrieve_workflow(workflow_id).get_status()  # 404 JSON if unknown
    body: dict[str, object] = {"workflow_id": workflow_id, "status": status.status}
    if status.status == "SUCCESS":
        body["result"] = status.output
    return JsonResponse(body)
