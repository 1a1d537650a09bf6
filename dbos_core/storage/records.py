"""Plain records read from storage; free of SQLAlchemy so the runtime imports fast."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# "Whoever owns it": a take-over of a workflow that does not depend on its owner.
ANY_OWNER: Any = object()


@dataclass(frozen=True)
class StepRecord:
    function_id: int
    function_name: str
    output: str | None
    error: str | None
    child_workflow_id: str | None
