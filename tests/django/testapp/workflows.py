"""Workflows of the test app; imported by dbos_django's AppConfig.ready()."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

from django.db import transaction as django_transaction

import dbos_django
from dbos_core import DBOS

from .models import Ledger, Note

# Set in a child process: SIGKILL it right after the transaction commits.
KILL_AFTER_COMMIT = os.environ.get("DBOS_DJANGO_KILL_AFTER_COMMIT") == "1"
# Each execution of a transaction body appends a line here (to count executions).
EXECUTION_LOG = os.environ.get("DBOS_DJANGO_EXECUTION_LOG")


def _log_execution(what: str) -> None:
    if EXECUTION_LOG:
        with Path(EXECUTION_LOG).open("a") as f:
            f.write(what + "\n")


@DBOS.transaction()
def save_note(title: str, fail: bool = False) -> int:
    _log_execution(f"save_note:{title}")
    Note.objects.create(title=title, created_by=DBOS.authenticated_user or "")
    if fail:
        raise ValueError(f"refusing note {title!r}")
    if KILL_AFTER_COMMIT:
        django_transaction.on_commit(lambda: os.kill(os.getpid(), signal.SIGKILL))
    return Note.objects.count()


@dbos_django.transaction(using="other")
def write_ledger(entry: str) -> int:
    Ledger.objects.using("other").create(entry=entry)
    return Ledger.objects.using("other").count()


@DBOS.step()
def describe(count: int) -> str:
    return f"{count} note(s)"


@DBOS.workflow()
def note_workflow(title: str, fail: bool = False) -> dict[str, Any]:
    count = save_note(title, fail)
    return {
        "workflow_id": DBOS.workflow_id,
        "count": count,
        "summary": describe(count),
        "user": DBOS.authenticated_user,
        "roles": DBOS.authenticated_roles,
    }


@DBOS.workflow()
def ledger_workflow(entry: str) -> int:
    return write_ledger(entry)


# The test releases it; until then gated_workflow stays PENDING inside its first step.
gate = threading.Event()


@DBOS.step()
def wait_at_gate() -> str:
    gate.wait(30)
    return "passed"


@DBOS.step()
def after_gate() -> str:
    return "done"


@DBOS.workflow()
def gated_workflow() -> str:
    return wait_at_gate() + "+" + after_gate()
