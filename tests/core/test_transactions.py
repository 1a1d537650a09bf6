"""@DBOS.transaction: writes and checkpoint commit together, exactly once, retried on conflicts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dbos_core import DBOS, DBOSClient, DBOSConfig, SetWorkflowID
from dbos_core.error import DBOSException
from tests.conftest import BACKEND, _created_pg_databases, _pg_admin, make_database_url

ROOT = Path(__file__).resolve().parents[2]

greetings = sa.Table(
    "greetings",
    sa.MetaData(),
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("note", sa.String),
)
counters = sa.Table(
    "counters",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("value", sa.Integer, nullable=False),
)


@pytest.fixture()
def app_url(tmp_path: Path) -> Iterator[str]:
    start = len(_created_pg_databases)
    url = make_database_url(tmp_path, "app")
    engine = sa.create_engine(url)
    greetings.metadata.create_all(engine)
    counters.metadata.create_all(engine)
    engine.dispose()
    yield url
    for name in _created_pg_databases[start:]:
        try:
            _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except Exception:
            pass
    del _created_pg_databases[start:]


@pytest.fixture()
def txn_dbos(dbos_config: DBOSConfig, app_url: str) -> Iterator[type[DBOS]]:
    DBOS.destroy()
    DBOS(config={**dbos_config, "application_database_url": app_url})
    DBOS.launch()
    yield DBOS
    DBOS.destroy()


def app_rows(app_url: str, table: sa.Table) -> list[Any]:
    engine = sa.create_engine(app_url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.select(table))]
    finally:
        engine.dispose()


def test_transaction_writes_and_checkpoint(txn_dbos: type[DBOS], app_url: str) -> None:
    calls: list[str] = []

    @DBOS.transaction()
    def example_insert(name: str, note: str) -> None:
        calls.append(name)
        DBOS.sql_session.execute(greetings.insert().values(name=name, note=note))

    @DBOS.transaction()
    def example_select(name: str) -> str | None:
        sql = sa.text("SELECT note FROM greetings WHERE name = :name LIMIT 1")
        row = DBOS.sql_session.execute(sql, {"name": name}).first()
        return row[0] if row else None

    @DBOS.workflow()
    def greet(name: str) -> str | None:
        example_insert(name, "hi")
        return example_select(name)

    with SetWorkflowID("g1"):
        assert greet("ada") == "hi"
    # The same workflow ID again does not run the transaction again.
    with SetWorkflowID("g1"):
        assert greet("ada") == "hi"
    assert calls == ["ada"]
    assert app_rows(app_url, greetings) == [("ada", "hi")]
    steps = DBOS.list_workflow_steps("g1")
    assert [s["function_name"] for s in steps] == [
        example_insert.__qualname__,
        example_select.__qualname__,
    ]
    assert steps[1]["output"] == "hi"
    # Outside a workflow a transaction still runs in one database transaction.
    assert example_select("ada") == "hi"


def test_rolled_back_transaction_leaves_nothing(txn_dbos: type[DBOS], app_url: str) -> None:
    @DBOS.transaction()
    def insert_then_fail(name: str) -> None:
        DBOS.sql_session.execute(greetings.insert().values(name=name, note="x"))
        raise ValueError("changed my mind")

    @DBOS.workflow()
    def w() -> None:
        insert_then_fail("bob")

    with SetWorkflowID("rb"), pytest.raises(ValueError, match="changed my mind"):
        w()
    assert app_rows(app_url, greetings) == []
    steps = DBOS.list_workflow_steps("rb")
    assert isinstance(steps[0]["error"], ValueError)
    from dbos_core.transactions.sqlalchemy_backend import transaction_outputs

    engine = sa.create_engine(app_url)
    translate = {"dbos": None if BACKEND == "sqlite" else "dbos"}
    with engine.connect().execution_options(schema_translate_map=translate) as conn:
        assert conn.execute(sa.select(transaction_outputs)).all() == []
    engine.dispose()


def test_conflicting_transactions_are_retried(txn_dbos: type[DBOS], app_url: str) -> None:
    engine = sa.create_engine(app_url)
    with engine.begin() as conn:
        conn.execute(counters.insert().values(id=1, value=0))
    engine.dispose()
    attempts: list[int] = []
    both_read = threading.Barrier(2)

    @DBOS.transaction()
    def increment() -> int:
        attempts.append(1)
        value = DBOS.sql_session.execute(sa.select(counters.c.value)).scalar()
        try:
            # Make the two transactions overlap where the database lets them.
            both_read.wait(timeout=0.5)
        except threading.BrokenBarrierError:
            pass
        DBOS.sql_session.execute(counters.update().values(value=value + 1))
        return int(value) + 1

    @DBOS.workflow()
    def bump() -> int:
        return increment()

    handles = []
    for i in range(2):
        with SetWorkflowID(f"bump-{i}"):
            handles.append(DBOS.start_workflow(bump))
    assert sorted(h.get_result() for h in handles) == [1, 2]
    assert app_rows(app_url, counters) == [(1, 2)]
    if BACKEND == "postgres":
        # SERIALIZABLE made one of them fail and run again.
        assert len(attempts) > 2


def test_coroutine_transaction_without_async_engine_is_refused(
    txn_dbos: type[DBOS], app_url: str
) -> None:
    import asyncio

    calls: list[str] = []

    @DBOS.transaction()
    async def needs_async_engine(name: str) -> None:
        calls.append(name)

    @DBOS.workflow()
    async def uses_it() -> None:
        await needs_async_engine("x")

    # Decorating is allowed (the configuration may come later); calling says what to do.
    with pytest.raises(DBOSException, match=r"async def .*application_async_engine.*to_thread"):
        asyncio.run(needs_async_engine("x"))
    with (
        SetWorkflowID("no-async-engine"),
        pytest.raises(DBOSException, match="needs an async database engine"),
    ):
        asyncio.run(uses_it())
    assert calls == []
    # Refused before the step began: nothing was recorded for it.
    assert DBOS.list_workflow_steps("no-async-engine") == []

    with pytest.raises(DBOSException, match="isolation_level"):
        DBOS.transaction(isolation_level="CHAOS")
    with pytest.raises(DBOSException, match="only available inside"):
        _ = DBOS.sql_session
    assert not hasattr(DBOS, "sql_session")  # introspection is not broken by it


def test_transaction_committed_before_sigkill_is_not_run_again(
    dbos_config: DBOSConfig, app_url: str
) -> None:
    DBOS.destroy()
    sys_url = dbos_config["system_database_url"]
    assert sys_url is not None
    script = str(ROOT / "tests/core/txn_crash_script.py")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    crashed = subprocess.run(
        [sys.executable, script, sys_url, app_url, "crash"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert crashed.returncode == -9, crashed.stdout + crashed.stderr
    # The transaction committed; its step never reached the system database.
    ledger = sa.Table("ledger", sa.MetaData(), sa.Column("id"), sa.Column("note"))
    assert [r[1] for r in app_rows(app_url, ledger)] == ["rent"]
    with DBOSClient(sys_url) as client:
        assert client.retrieve_workflow("pay-1").get_status().status == "PENDING"
        assert client.list_workflow_steps("pay-1") == []
    recovered = subprocess.run(
        [sys.executable, script, sys_url, app_url, "recover"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert recovered.returncode == 0, recovered.stderr
    assert json.loads(recovered.stdout.strip().splitlines()[-1]) == {"result": "rent:1"}
    assert [r[1] for r in app_rows(app_url, ledger)] == ["rent"]
    with DBOSClient(sys_url) as client:
        assert [s["function_name"] for s in client.list_workflow_steps("pay-1")] == [
            "record_payment"
        ]


def test_transaction_from_async_workflow_and_dbos_class(txn_dbos: type[DBOS], app_url: str) -> None:
    import asyncio

    from dbos_core import DBOSConfiguredInstance

    @DBOS.dbos_class()
    class Greeter(DBOSConfiguredInstance):
        def __init__(self, note: str) -> None:
            self.note = note
            super().__init__(config_name=note)

        @DBOS.transaction()
        def save(self, name: str) -> str:
            DBOS.sql_session.execute(greetings.insert().values(name=name, note=self.note))
            return f"{name}:{self.note}"

        @DBOS.workflow()
        async def greet(self, name: str) -> str:
            # The seeds' pattern: a transaction is sync, run it off the event loop.
            return await asyncio.to_thread(self.save, name)

    greeter = Greeter("hello")

    async def run() -> str:
        with SetWorkflowID("async-txn"):
            return await greeter.greet("zoe")

    assert asyncio.run(run()) == "zoe:hello"
    assert app_rows(app_url, greetings) == [("zoe", "hello")]
    steps = DBOS.list_workflow_steps("async-txn")
    assert [s["function_name"] for s in steps] == [
        "test_transaction_from_async_workflow_and_dbos_class.<locals>.Greeter.save"
    ]
