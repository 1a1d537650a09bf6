"""IDs from outside are checked before anything is written, the same way on both backends."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import sqlalchemy as sa

from dbos_core import (
    DBOS,
    DBOSClient,
    DBOSConfig,
    Debouncer,
    Queue,
    SetEnqueueOptions,
    SetWorkflowID,
)
from dbos_core.error import DBOSConfigurationError, DBOSInvalidIDError
from dbos_core.identifiers import MAX_ID_LENGTH
from tests.conftest import BACKEND

BAD_IDS = {
    "too long": "k" * 10_000,
    "one too long": "k" * (MAX_ID_LENGTH + 1),
    "NUL": "order\x00-1",
    "newline": "order\n-1",
    "escape": "order\x1b[31m",
    "DEL": "order\x7f",
    "lone surrogate": "order\ud800",
    "empty": "",
}


def workflow_count(dbos: type[DBOS]) -> int:
    return len(DBOS.list_workflows())


@DBOS.workflow()
def ids_echo_workflow(value: str) -> str:
    return value


@DBOS.workflow()
def ids_parent_of_echo(value: str) -> str:
    return ids_echo_workflow(value) + "!"


@pytest.mark.parametrize("bad", list(BAD_IDS.values()), ids=list(BAD_IDS))
def test_set_workflow_id_refuses_before_anything_is_written(dbos: type[DBOS], bad: str) -> None:
    with pytest.raises(DBOSInvalidIDError) as caught:
        SetWorkflowID(bad)
    assert caught.value.code == "INVALID_ID" and caught.value.http_status == 400
    assert "workflow ID" in caught.value.message
    assert workflow_count(dbos) == 0
    # The system stays usable.
    with SetWorkflowID("fine-1"):
        assert ids_echo_workflow("x") == "x"


def test_the_limit_itself_works_end_to_end(dbos: type[DBOS]) -> None:
    # 256 characters of four-byte UTF-8: stored, indexed, NOTIFYed (child IDs are longer).
    longest = "🙂" * MAX_ID_LENGTH
    with SetWorkflowID(longest):
        handle = DBOS.start_workflow(ids_parent_of_echo, "café")
    assert handle.get_result() == "café!"
    assert DBOS.retrieve_workflow(longest).get_status().status == "SUCCESS"
    child = DBOS.list_workflow_steps(longest)[0]["child_workflow_id"]
    assert child is not None and len(child) > MAX_ID_LENGTH
    assert DBOS.retrieve_workflow(child).get_result() == "café"


def test_queue_options_and_debounce_keys(dbos: type[DBOS]) -> None:
    queue = Queue("id-checks", partition_queue=True)
    for field in ("deduplication_id", "queue_partition_key"):
        for bad in ("x" * 10_000, "a\x00b", ""):
            with pytest.raises(DBOSInvalidIDError, match=field):
                SetEnqueueOptions(**{field: bad})
    debouncer = Debouncer.create(ids_echo_workflow)
    with pytest.raises(DBOSInvalidIDError, match="debounce_key"):
        debouncer.debounce("k\x00", 1.0, "x")
    assert workflow_count(dbos) == 0
    with SetEnqueueOptions(queue_partition_key="p-1", deduplication_id="d-1"):
        assert queue.enqueue(ids_echo_workflow, "ok").get_result() == "ok"


def test_lookups_refuse_what_cannot_exist(dbos: type[DBOS]) -> None:
    for bad in ("a\x00b", "x" * 5000):
        with pytest.raises(DBOSInvalidIDError):
            DBOS.retrieve_workflow(bad)
        with pytest.raises(DBOSInvalidIDError):
            DBOS.list_workflow_steps(bad)


def test_fork_checks_the_new_id(dbos: type[DBOS]) -> None:
    with SetWorkflowID("to-fork"):
        ids_echo_workflow("f")
    from dbos_core.runtime import global_state
    from dbos_core.storage import management as ops

    sysdb = global_state.get_runtime().sysdb
    for bad in ("x" * 10_000, "a\nb"):
        with pytest.raises(DBOSInvalidIDError, match="new workflow ID of the fork"):
            ops.fork(
                sysdb,
                "to-fork",
                1,
                new_workflow_id=bad,
                application_version=None,
                executor_id="local",
                run_here=False,
            )
    assert workflow_count(dbos) == 1


def test_client_checks_ids(dbos: type[DBOS], db_url: str) -> None:
    with DBOSClient(db_url) as client:
        base: Any = {"queue_name": "q", "workflow_name": "echo"}
        for options in (
            {**base, "workflow_id": "w" * 10_000},
            {**base, "workflow_id": "w\x00"},
            {**base, "deduplication_id": "d" * 300},
            {**base, "queue_partition_key": "p\r\n"},
        ):
            with pytest.raises(DBOSInvalidIDError):
                client.enqueue(options)
        with pytest.raises(DBOSInvalidIDError, match="new workflow ID"):
            client.fork_workflow("anything", 1, forked_workflow_id="n\x00")
        with pytest.raises(DBOSInvalidIDError, match="idempotency_key of send"):
            client.send("anything", "hi", idempotency_key="i" * 10_000)
    assert workflow_count(dbos) == 0


@pytest.mark.parametrize(
    "schema", ['dbos"; DROP SCHEMA public CASCADE; --', "has space", "1starts_with_digit", "x" * 59]
)
def test_schema_names_are_plain_identifiers(dbos_config: DBOSConfig, schema: str) -> None:
    with pytest.raises(DBOSConfigurationError, match="plain SQL identifier"):
        DBOS(config={**dbos_config, "dbos_system_schema": schema})
    with pytest.raises(DBOSConfigurationError, match="plain SQL identifier"):
        DBOSClient(dbos_config["system_database_url"] or "", dbos_system_schema=schema)


def test_cli_schema_is_checked_before_any_sql(fresh_db_url: str) -> None:
    from tests.core.test_cli import ROOT

    schema = ["--schema", 'x" CASCADE; CREATE SCHEMA "pwned']
    for command in (["reset", "--yes"], ["workflow", "list"]):
        proc = subprocess.run(
            [sys.executable, "-m", "dbos_core.cli", *command, "--db-url", fresh_db_url, *schema],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert proc.returncode == 1, proc.stderr
        assert "plain SQL identifier" in proc.stderr
    if BACKEND == "postgres":
        engine = sa.create_engine(fresh_db_url.replace("postgresql://", "postgresql+psycopg://"))
        try:
            assert "pwned" not in sa.inspect(engine).get_schema_names()
        finally:
            engine.dispose()
