"""Django-ORM transactions: the ORM writes and the checkpoint commit or roll back together."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.db import IntegrityError, connections, transaction

import dbos_django
from dbos_core import DBOS, SetWorkflowID
from dbos_core.error import DBOSException
from dbos_core.transactions import Checkpoint
from dbos_django.models import TransactionOutput
from dbos_django.transactions import DBOSDjangoAtomicError, DjangoTransactionBackend
from tests.django.testapp import workflows
from tests.django.testapp.models import Ledger, Note

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


@pytest.fixture()
def execution_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = tmp_path / "executions.log"
    monkeypatch.setattr(workflows, "EXECUTION_LOG", str(log))
    return log


def executions(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_writes_and_checkpoint_commit_together(django_dbos: Any, execution_log: Path) -> None:
    with SetWorkflowID("wf-commit"):
        result = workflows.note_workflow("first")
    assert result["workflow_id"] == "wf-commit"
    assert result["count"] == 1 and result["summary"] == "1 note(s)"
    assert list(Note.objects.values_list("title", flat=True)) == ["first"]
    checkpoint = TransactionOutput.objects.get(workflow_uuid="wf-commit")
    assert checkpoint.function_id == 1 and checkpoint.output
    steps = DBOS.list_workflow_steps("wf-commit")
    assert steps[0]["function_name"].endswith("save_note")
    assert steps[0]["output"] == 1

    # Running the same workflow ID again replays; the transaction body does not run again.
    with SetWorkflowID("wf-commit"):
        again = workflows.note_workflow("first")
    assert again["count"] == 1
    assert executions(execution_log) == ["save_note:first"]
    assert Note.objects.count() == 1


def test_rollback_leaves_neither_rows_nor_checkpoint(django_dbos: Any) -> None:
    with SetWorkflowID("wf-rollback"), pytest.raises(ValueError, match="refusing note"):
        workflows.note_workflow("bad", fail=True)
    assert Note.objects.count() == 0
    assert not TransactionOutput.objects.filter(workflow_uuid="wf-rollback").exists()
    assert DBOS.retrieve_workflow("wf-rollback").get_status().status == "ERROR"
    # The error is the step's recorded outcome: replay raises it without running again.
    with SetWorkflowID("wf-rollback"), pytest.raises(ValueError, match="refusing note"):
        workflows.note_workflow("bad", fail=True)
    assert Note.objects.count() == 0


def test_committed_checkpoint_not_yet_in_system_database_is_not_run_again(
    django_dbos: Any, execution_log: Path
) -> None:
    # What a crash right after the commit leaves: the checkpoint row, no system step.
    from dbos_core.serialization import serialize_value

    rt_serializer = django_dbos._current._runtime.serializer
    TransactionOutput.objects.create(
        workflow_uuid="wf-crashed",
        function_id=1,
        output=serialize_value(rt_serializer, 41, "test"),
        created_at=0,
    )
    with SetWorkflowID("wf-crashed"):
        result = workflows.note_workflow("never")
    assert result["count"] == 41
    assert executions(execution_log) == []
    assert Note.objects.count() == 0
    assert DBOS.list_workflow_steps("wf-crashed")[0]["output"] == 41


def test_duplicate_commit_is_refused_by_the_checkpoint_key(django_dbos: Any) -> None:
    backend = DjangoTransactionBackend("default")
    checkpoint = Checkpoint("wf-dup", 1, lambda value: repr(value))

    def body(connection: Any) -> int:
        Note.objects.create(title="dup")
        return 7

    assert backend.run(body, checkpoint, "SERIALIZABLE") == 7
    with pytest.raises(IntegrityError):
        backend.run(body, checkpoint, "SERIALIZABLE")
    # The losing run's ORM write rolled back with its checkpoint.
    assert Note.objects.filter(title="dup").count() == 1
    recorded = backend.recorded_output("wf-dup", 1)
    assert recorded is not None and recorded.output == "7"
    assert backend.recorded_output("wf-dup", 2) is None


def test_outer_atomic_block_is_refused(django_dbos: Any) -> None:
    with pytest.raises(DBOSDjangoAtomicError, match="outer atomic"), transaction.atomic():
        Note.objects.create(title="outer")
        workflows.note_workflow("inner")
    assert Note.objects.count() == 0
    # Outside a workflow too: the same rule everywhere.
    with pytest.raises(DBOSDjangoAtomicError), transaction.atomic():
        workflows.save_note("direct")


def test_transaction_outside_a_workflow_runs_without_checkpoint(django_dbos: Any) -> None:
    assert workflows.save_note("plain") == 1
    assert Note.objects.count() == 1
    assert TransactionOutput.objects.count() == 0


def test_using_another_alias(django_dbos: Any) -> None:
    with SetWorkflowID("wf-ledger"):
        assert workflows.ledger_workflow("credit") == 1
    assert list(Ledger.objects.using("other").values_list("entry", flat=True)) == ["credit"]
    assert TransactionOutput.objects.using("other").filter(workflow_uuid="wf-ledger").exists()
    assert not TransactionOutput.objects.using("default").exists()


@DBOS.workflow()
def note_then_probe_connection(title: str) -> bool:
    workflows.save_note(title)
    # This runs on a DBOS workflow thread, which has no request cycle to close it.
    return connections["default"].connection is None


def test_connections_are_released_on_dbos_threads(django_dbos: Any) -> None:
    # With CONN_MAX_AGE=0 (Django's default) the connection a transaction opened on a
    # DBOS thread is closed again, as Django does at the end of a request.
    handle = DBOS.start_workflow(note_then_probe_connection, "threaded")
    assert handle.get_result() is True
    assert Note.objects.filter(title="threaded").count() == 1


def test_bad_alias_is_refused_at_decoration() -> None:
    with pytest.raises(DBOSException, match="no such alias"):
        dbos_django.transaction(using="nowhere")(lambda: None)


class LosesTheRace(DjangoTransactionBackend):
    """Another execution of the same workflow commits this transaction just before us."""

    def run(self, body: Any, checkpoint: Checkpoint | None, isolation_level: str) -> Any:
        if checkpoint is not None:
            TransactionOutput.objects.create(
                workflow_uuid=checkpoint.workflow_id,
                function_id=checkpoint.function_id,
                output=checkpoint.serialize(99),
                created_at=0,
            )
            Note.objects.create(title="winner")
        return super().run(body, checkpoint, isolation_level)


def test_concurrent_duplicate_commits_once_and_uses_the_winners_output(
    django_dbos: Any, execution_log: Path
) -> None:
    from dbos_core.integration import set_transaction_backend_factory

    set_transaction_backend_factory(lambda rt: LosesTheRace("default"))
    with SetWorkflowID("wf-race"):
        result = workflows.note_workflow("loser")
    assert result["count"] == 99
    # Our body ran, but its write rolled back with the refused checkpoint.
    assert executions(execution_log) == ["save_note:loser"]
    assert list(Note.objects.values_list("title", flat=True)) == ["winner"]
    assert DBOS.list_workflow_steps("wf-race")[0]["output"] == 99


def test_conflicting_transactions_are_retried(django_dbos: Any) -> None:
    import threading

    barrier = threading.Barrier(2, timeout=10)
    attempts: dict[str, int] = {}

    @DBOS.transaction()
    def read_then_insert(title: str) -> int:
        attempts[title] = attempts.get(title, 0) + 1
        seen = Note.objects.count()
        if attempts[title] == 1:
            barrier.wait()  # both have read before either writes: a conflict
        Note.objects.create(title=title)
        return seen

    @DBOS.workflow()
    def racer(title: str) -> int:
        return read_then_insert(title)

    handles = [DBOS.start_workflow(racer, t) for t in ("left", "right")]
    seen = sorted(h.get_result() for h in handles)
    # Serialized: one saw no note, the other (retried after the conflict) saw one.
    assert seen == [0, 1]
    assert Note.objects.count() == 2
    assert sorted(attempts.values()) == [1, 2]


def test_orm_use_in_steps_is_released_after_the_workflow(django_dbos: Any) -> None:
    import time

    wrappers: list[Any] = []

    @DBOS.step()
    def count_in_step() -> int:
        wrappers.append(connections["default"])  # this thread's connection wrapper
        return Note.objects.count()

    @DBOS.workflow()
    def reads_in_a_step() -> int:
        return count_in_step()

    assert DBOS.start_workflow(reads_in_a_step).get_result() == 0
    # The after-work hook closes it once the workflow is done on that thread.
    deadline = time.monotonic() + 10
    while wrappers[0].connection is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert wrappers[0].connection is None


@pytest.fixture()
def system_tables_in_default_db(settings: Any) -> None:
    settings.DBOS = {"name": "same-db", "application_version": "test"}


def test_system_database_defaults_to_the_default_test_database(
    system_tables_in_default_db: None, django_dbos: Any
) -> None:
    from dbos_django import conf

    url = conf.dbos_config()["system_database_url"]
    assert str(connections["default"].settings_dict["NAME"]) in url
    assert "test_" in url  # the test database, never the real one
    with SetWorkflowID("wf-same-db"):
        assert workflows.note_workflow("together")["count"] == 1
    assert DBOS.retrieve_workflow("wf-same-db").get_status().status == "SUCCESS"
