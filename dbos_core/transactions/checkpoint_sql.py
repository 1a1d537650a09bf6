"""The checkpoint row of a transaction, in SQL shared by every SQLAlchemy-based backend.

Backends differ in where the table lives (``dbos.transaction_outputs`` beside a
SQLAlchemy engine, ``dbos_transaction_outputs`` in a Flask-SQLAlchemy app's own
metadata) but write and read it with these statements, and open their database
transactions with the same rules (see ``begin_rules``).
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from .backend import Checkpoint

# The schema name the shared table definition carries; translated per engine.
SCHEMA_PLACEHOLDER = "dbos"


def checkpoint_columns(name: str) -> list[sa.schema.SchemaItem]:
    """The columns of a checkpoint table named ``name``. Its primary key is what makes a
    concurrent duplicate execution commit only once."""
    return [
        sa.Column("workflow_uuid", sa.Text, nullable=False),
        sa.Column("function_id", sa.Integer, nullable=False),
        sa.Column("output", sa.Text),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("workflow_uuid", "function_id", name=f"{name}_pkey"),
    ]


def insert_checkpoint(table: sa.Table, checkpoint: Checkpoint, result: Any) -> sa.Insert:
    return table.insert().values(
        workflow_uuid=checkpoint.workflow_id,
        function_id=checkpoint.function_id,
        output=checkpoint.serialize(result),
        created_at=int(time.time() * 1000),
    )


def select_output(table: sa.Table, workflow_id: str, function_id: int) -> sa.Select[Any]:
    return sa.select(table.c.output).where(
        table.c.workflow_uuid == workflow_id, table.c.function_id == function_id
    )


def schema_options(dialect_name: str, schema: str) -> dict[str, Any]:
    """Execution options that put the placeholder schema where it belongs: the named
    schema on PostgreSQL, the main database on SQLite (which has no schemas)."""
    target = None if dialect_name == "sqlite" else schema
    return {"schema_translate_map": {SCHEMA_PLACEHOLDER: target}}
