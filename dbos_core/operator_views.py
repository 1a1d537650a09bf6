"""What operator tools show of stored workflows: JSON-friendly dicts, never unpickled.

The admin server, the CLIs (``dbos-suite``, ``flask dbos``, ``manage.py dbos``) and the
Django admin read workflows and steps through these functions. Every stored input,
output and error goes through ``safe_display.display_stored_value``; pass the
application's ``serializer`` only as the documented opt-in to decode them.
"""

from __future__ import annotations

from typing import Any

from .error import DBOSNonExistentWorkflowError
from .identifiers import check_lookup_id
from .safe_display import display_stored_value
from .serialization import Serializer
from .storage import management as ops
from .storage.system_database import SystemDatabase
from .storage.workflows import ListFilters

# A list without a limit reads at most this many rows; asking for more is refused.
DEFAULT_LIST_LIMIT = 100
MAX_LIST_LIMIT = 1000


def bounded_limit(limit: Any) -> int:
    """The row limit of an operator listing: the default when absent, refused above the
    maximum (so no request reads a whole table)."""
    if limit is None:
        return DEFAULT_LIST_LIMIT
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ops.bad_input(f"limit must be a non-negative integer, got {limit!r}")
    if limit > MAX_LIST_LIMIT:
        raise ops.bad_input(f"limit must be at most {MAX_LIST_LIMIT}, got {limit}")
    return limit


def workflow_view(
    sysdb: SystemDatabase, row: Any, serializer: Serializer | None = None
) -> dict[str, Any]:
    """One ``workflow_status`` row as ``WorkflowStatus.to_dict()`` shows it, with its
    input, output and error displayed safely."""
    view = sysdb.workflows.to_status(row, load_input=False, load_output=False).to_dict()
    m = row._mapping
    view["input"] = display_stored_value(m["inputs"], serializer)
    view["output"] = display_stored_value(m["output"], serializer)
    view["error"] = display_stored_value(m["error"], serializer)
    return view


def list_workflow_views(
    sysdb: SystemDatabase, filters: ListFilters, serializer: Serializer | None = None
) -> list[dict[str, Any]]:
    return [workflow_view(sysdb, row, serializer) for row in sysdb.workflows.list_rows(filters)]


def get_workflow_view(
    sysdb: SystemDatabase, workflow_id: str, serializer: Serializer | None = None
) -> dict[str, Any]:
    row = sysdb.workflows.get_row(check_lookup_id(workflow_id))
    if row is None:
        raise DBOSNonExistentWorkflowError(workflow_id)
    return workflow_view(sysdb, row, serializer)


def list_step_views(
    sysdb: SystemDatabase, workflow_id: str, serializer: Serializer | None = None
) -> list[dict[str, Any]]:
    return [
        {
            "function_id": int(function_id),
            "function_name": name,
            "output": display_stored_value(output, serializer),
            "error": display_stored_value(error, serializer),
            "child_workflow_id": child,
        }
        for function_id, name, output, error, child in ops.list_step_rows(sysdb, workflow_id)
    ]
