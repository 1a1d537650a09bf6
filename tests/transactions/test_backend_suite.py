"""One suite, every transaction backend: SQLAlchemy on a URL, the application's own
Engine with SQLModel sessions, async transactions on an AsyncEngine, Flask-SQLAlchemy and
the Django ORM; each on SQLite and PostgreSQL (DBOS_TEST_BACKEND).

The same properties for all: the writes and the checkpoint commit together; an exception
rolls both back; a process killed right after the commit does not run the transaction
again when it restarts, one killed before the commit does; two transactions that
conflict are retried and lose no update; the checkpoint key lets a duplicate execution
commit only once; the isolation level is the one declared.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dbos_core import DBOS, DBOSClient
from dbos_core.transactions import Checkpoint
from tests.conftest import BACKEND
from tests.core.crashutil import ROOT
from tests.transactions import common
from tests.transactions.harness import Harness, harness_for


def app_rows(app_url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(common.sync_url(app_url))
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(sql))]
    finally:
        engine.dispose()


def item_names(app_url: str) -> list[str]:
    return [r[0] for r in app_rows(app_url, "SELECT name FROM txn_items ORDER BY id")]


def checkpoints(harness: Harness, workflow_id: str) -> list[tuple[Any, ...]]:
    table = harness.checkpoint_table
    if harness.checkpoint_schema is not None and BACKEND == "postgres":
        table = f"{harness.checkpoint_schema}.{table}"
    return app_rows(
        harness.app_url,
        f"SELECT function_id, output FROM {table} WHERE workflow_uuid = '{workflow_id}'",
    )


def test_writes_and_checkpoint_commit_together(harness: Harness, execution_log: Path) -> None:
    assert harness.add_item("wf-commit", "ada") == 1
    assert item_names(harness.app_url) == ["ada"]
    [(function_id, output)] = checkpoints(harness, "wf-commit")
    assert function_id == 1 and output is not None
    steps = DBOS.list_workflow_steps("wf-commit")
    assert [s["function_name"] for s in steps] == [f"suite.{harness.ops.P.split('.')[1]}.add_item"]
    assert steps[0]["output"] == 1
    # The same workflow ID again: replayed, the body does not run a second time.
    assert harness.add_item("wf-commit", "ada") == 1
    assert common.executions() == ["add_item:ada"]
    assert item_names(harness.app_url) == ["ada"]


def test_an_exception_rolls_back_writes_and_checkpoint(
    harness: Harness, execution_log: Path
) -> None:
    with pytest.raises(ValueError, match="refused bob"):
        harness.add_item("wf-fail", "bob", fail=True)
    assert item_names(harness.app_url) == []
    assert checkpoints(harness, "wf-fail") == []
    assert DBOS.retrieve_workflow("wf-fail").get_status().status == "ERROR"
    # The error is the recorded outcome: replay raises it without running the body.
    with pytest.raises(ValueError, match="refused bob"):
        harness.add_item("wf-fail", "bob", fail=True)
    assert common.executions() == ["add_item:bob"]
    # And the backend is usable afterwards.
    assert harness.add_item("wf-after", "carl") == 1


def test_outside_a_workflow_no_checkpoint_is_written(harness: Harness, execution_log: Path) -> None:
    assert harness.add_item_outside_workflow("dora") == 1
    assert harness.add_item_outside_workflow("eve") == 2
    assert item_names(harness.app_url) == ["dora", "eve"]
    table = harness.checkpoint_table
    if harness.checkpoint_schema is not None and BACKEND == "postgres":
        table = f"{harness.checkpoint_schema}.{table}"
    assert app_rows(harness.app_url, f"SELECT * FROM {table}") == []


def test_conflicting_transactions_are_retried_and_lose_no_update(
    harness: Harness, execution_log: Path
) -> None:
    engine = sa.create_engine(common.sync_url(harness.app_url))
    with engine.begin() as conn:
        conn.execute(common.counters.insert().values(id=1, value=0))
    engine.dispose()
    common.race.arm(2)
    results = harness.bump_concurrently(["left", "right"])
    # Both read 0 before either wrote (the race made sure): one of them failed to
    # serialize (PostgreSQL: SQLSTATE 40001; SQLite: SQLITE_BUSY on its lock upgrade),
    # was rolled back and ran again, reading 1. The winner ran once.
    assert sorted(results) == [1, 2]
    winner, loser = sorted(common.race.attempts.values())
    assert winner == 1
    if BACKEND == "postgres":
        # Its UPDATE waited for the winner's commit, then failed: one retry, after it.
        assert loser == 2
    else:
        # SQLite readers do not wait for a writer: a retry that read before the winner
        # committed conflicts again, so the loser may need more than one retry.
        assert loser >= 2
    assert app_rows(harness.app_url, "SELECT value FROM txn_counters") == [(2,)]


def test_a_duplicate_commit_is_refused_by_the_checkpoint_key(
    harness: Harness, execution_log: Path
) -> None:
    checkpoint = Checkpoint("wf-dup", 1, repr)
    assert harness.backend_insert(checkpoint, "first") == 1
    with pytest.raises(sa.exc.IntegrityError if harness.name != "django-orm" else Exception) as err:
        harness.backend_insert(checkpoint, "second")
    assert "unique" in str(err.value).lower() or "duplicate" in str(err.value).lower()
    # The losing run's write rolled back with its refused checkpoint.
    assert item_names(harness.app_url) == ["first"]
    assert checkpoints(harness, "wf-dup") == [(1, "1")]


@pytest.mark.skipif(BACKEND != "postgres", reason="SQLite is serializable at every level")
def test_isolation_level_is_the_declared_one(harness: Harness, execution_log: Path) -> None:
    assert harness.isolation_levels() == ("serializable", "repeatable read")


def run_child(
    backend_name: str, db_url: str, app_url: str, log: Path, mode: str, *workflow_ids: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "tests/transactions/child.py"),
            backend_name,
            db_url,
            app_url,
            str(log),
            mode,
            *workflow_ids,
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_sigkill_after_the_commit_does_not_rerun_it_and_before_the_commit_does(
    backend_name: str, db_url: str, app_url: str, execution_log: Path
) -> None:
    """Real processes: one killed right after its transaction committed, one killed
    inside its transaction; then a third process recovers both workflows."""
    DBOS.destroy()
    child = functools.partial(run_child, backend_name, db_url, app_url, execution_log)

    def assert_killed_before_its_step_was_recorded(workflow_id: str) -> None:
        with DBOSClient(db_url) as client:
            assert client.retrieve_workflow(workflow_id).get_status().status == "PENDING"
            assert client.list_workflow_steps(workflow_id) == []

    after = child("after-commit", "wf-after")
    assert after.returncode == -9, after.stdout + after.stderr
    assert_killed_before_its_step_was_recorded("wf-after")
    # The transaction and its checkpoint were durable before the step reached the
    # system database.
    assert item_names(app_url) == ["wf-after"]
    # (This process recovers wf-after when it launches: from the checkpoint.)
    before = child("before-commit", "wf-before")
    assert before.returncode == -9, before.stdout + before.stderr
    assert_killed_before_its_step_was_recorded("wf-before")
    assert item_names(app_url) == ["wf-after"]  # the killed transaction left nothing

    recovered = child("recover", "wf-after", "wf-before")
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    results = json.loads(recovered.stdout.strip().splitlines()[-1])
    # wf-after: recovery found the checkpoint and did not run the body again (its count
    # is the one it committed: 1). wf-before: it ran again, after wf-after's item.
    assert results == {"wf-after": 1, "wf-before": 2}
    assert common.executions() == ["add_item:wf-after", "add_item:wf-before", "add_item:wf-before"]
    assert item_names(app_url) == ["wf-after", "wf-before"]
    harness = harness_for(backend_name, db_url, app_url)
    with DBOSClient(db_url) as client:
        for workflow_id, count in results.items():
            assert client.retrieve_workflow(workflow_id).get_status().status == "SUCCESS"
            [step] = client.list_workflow_steps(workflow_id)
            assert step["function_name"].endswith(".add_item") and step["output"] == count
            assert [r[0] for r in checkpoints(harness, workflow_id)] == [1]
