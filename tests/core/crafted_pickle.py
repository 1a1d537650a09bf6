"""A crafted pickle written straight into a system database, as an attacker who can write
that database would: unpickling any of its values creates ``marker``."""

from __future__ import annotations

import base64
import pickle
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from dbos_core.storage.schema import operation_outputs, workflow_status

CRAFTED_ID = "crafted-1"


class _OpensMarker:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        # pickle.loads calls open(marker, "w"): the file appearing proves execution.
        return (open, (str(self.marker), "w"))


def crafted(marker: Path) -> str:
    return base64.b64encode(pickle.dumps(_OpensMarker(marker))).decode("ascii")


def write_crafted_workflow(
    db: Any,
    marker: Path,
    workflow_id: str = CRAFTED_ID,
    status: str = "ERROR",
    queue_name: str | None = None,
) -> None:
    """Insert a finished workflow whose input, output, error and step output are all
    the crafted pickle (``db`` is the storage ``Database`` of the system database)."""
    evil = crafted(marker)
    now = int(time.time() * 1000)
    with db.transaction() as conn:
        conn.execute(
            sa.insert(workflow_status).values(
                workflow_uuid=workflow_id,
                status=status,
                name="app.harmless_looking",
                inputs=evil,
                output=evil,
                error=evil,
                executor_id="local",
                queue_name=queue_name,
                created_at=now,
                updated_at=now,
            )
        )
        conn.execute(
            sa.insert(operation_outputs).values(
                workflow_uuid=workflow_id,
                function_id=1,
                function_name="app.step",
                output=evil,
                error=evil,
                started_at_epoch_ms=now,
                completed_at_epoch_ms=now,
            )
        )
