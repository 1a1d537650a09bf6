"""The one place where identifiers from outside are checked before they are stored.

Workflow IDs (``SetWorkflowID``, idempotency-key headers, ``DBOSClient`` options, fork
targets), queue deduplication IDs, queue partition keys and debounce keys all become
indexed columns, and workflow IDs travel in PostgreSQL NOTIFY payloads. A PostgreSQL
B-tree entry holds at most about 2.7 kB and a NOTIFY payload 8 kB, SQLite holds anything:
so every backend gets the same limits, checked before anything is written, and a
violation is one exception (``DBOSInvalidIDError``, HTTP 400) on every backend.

Schema names reach SQL text (``CREATE SCHEMA``, ``DROP SCHEMA``, ``LISTEN``), so they are
plain identifiers, always double-quoted where they are used.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from .error import (
    DBOSConfigurationError,
    DBOSConflictingWorkflowError,
    DBOSInvalidIDError,
    DBOSWorkflowIDConflictError,
)

# Characters, not bytes: 256 characters are at most 1 kB of UTF-8, well inside what a
# PostgreSQL index entry and a NOTIFY payload can hold (with the prefixes we add).
MAX_ID_LENGTH = 256
# Looking up an existing workflow: IDs we derived (a child is "<parent>-<n>") may be a
# little longer than what callers may choose, so lookups only refuse what cannot exist.
MAX_LOOKUP_LENGTH = 4 * MAX_ID_LENGTH
# "dbos_<schema>" is the NOTIFY channel, and PostgreSQL identifiers hold 63 bytes.
MAX_SCHEMA_LENGTH = 58
_SCHEMA_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _bad_character(value: str) -> str | None:
    """A description of the first character no ID may hold, or None."""
    for index, char in enumerate(value):
        category = unicodedata.category(char)
        # Cc: control characters (NUL, newlines, escape sequences, DEL, C1);
        # Cs: lone surrogates, which cannot be encoded as UTF-8 at all.
        if category in ("Cc", "Cs"):
            return f"it contains the control character U+{ord(char):04X} at position {index}"
    return None


def check_id(value: Any, what: str = "workflow ID") -> str:
    """Return ``value`` if it may be stored as an ID; raise ``DBOSInvalidIDError`` if not.

    An ID is a string of 1 to ``MAX_ID_LENGTH`` characters without control characters.
    """
    if not isinstance(value, str):
        raise DBOSInvalidIDError(what, f"it must be a string, got {type(value).__name__}")
    if not value:
        raise DBOSInvalidIDError(what, "it is empty")
    if len(value) > MAX_ID_LENGTH:
        raise DBOSInvalidIDError(
            what, f"it has {len(value)} characters; the limit is {MAX_ID_LENGTH}"
        )
    bad = _bad_character(value)
    if bad is not None:
        raise DBOSInvalidIDError(what, bad)
    return value


def check_optional_id(value: Any, what: str) -> str | None:
    return None if value is None else check_id(value, what)


def check_lookup_id(value: Any, what: str = "workflow ID") -> str:
    """An ID used to find an existing workflow: refuse only what can never be stored
    (a raw database error otherwise: PostgreSQL text cannot hold NUL)."""
    if not isinstance(value, str) or not value:
        raise DBOSInvalidIDError(what, f"expected a non-empty string, got {value!r}"[:120])
    if len(value) > MAX_LOOKUP_LENGTH:
        raise DBOSInvalidIDError(
            what, f"it has {len(value)} characters; no stored ID is longer than {MAX_LOOKUP_LENGTH}"
        )
    bad = _bad_character(value)
    if bad is not None:
        raise DBOSInvalidIDError(what, bad)
    return value


def check_schema_name(value: Any, what: str = "dbos_system_schema") -> str:
    """A PostgreSQL schema name we can put in SQL text (always quoted as well)."""
    if not isinstance(value, str) or not _SCHEMA_RE.match(value) or len(value) > MAX_SCHEMA_LENGTH:
        raise DBOSConfigurationError(
            f"{what} {value!r} must be a plain SQL identifier: a letter or '_', then letters, "
            f"digits or '_', at most {MAX_SCHEMA_LENGTH} characters"
        )
    return value


def quote_identifier(name: str, what: str = "schema name") -> str:
    """``"name"`` for SQL text, after checking that it is a plain identifier."""
    return f'"{check_schema_name(name, what)}"'


def check_reused_id(
    workflow_id: str, existing: Mapping[Any, Any], name: str, user: str | None, bound: bool
) -> None:
    """A start found its workflow ID taken: allow only the idempotent answer it may see.

    ``existing`` is the stored ``workflow_status`` row. For a caller ``bound`` to an
    identity (a web request, ``SetAuthenticatedUser``, a workflow started by either) the
    workflow must have been started by the same authenticated user, anonymous matching
    only anonymous, and the refusal says nothing about the workflow: not its user,
    function, status or result. Every caller is refused a workflow of another function;
    only an unbound caller (plain code that chose the ID) is told which function it is.
    """
    if bound and existing["authenticated_user"] != user:
        raise DBOSWorkflowIDConflictError(workflow_id)
    existing_name = existing["name"]
    if existing_name != name:
        detail = (
            "it belongs to a different workflow function"
            if bound
            else f"it already belongs to workflow function {existing_name!r}, not {name!r}"
        )
        raise DBOSConflictingWorkflowError(workflow_id, detail)
