"""Configuration errors, database reachability, migrations and serializers."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from dbos_core import DBOS, JsonSerializer, SetWorkflowID
from dbos_core.error import (
    DBOSConfigurationError,
    DBOSDatabaseUnavailableError,
    DBOSInitializationError,
)
from tests.conftest import BACKEND
from tests.core.crashutil import ROOT, kill9, spawn

STATUS_FIELDS = (
    "workflow_id status name recovery_attempts class_name config_name authenticated_user "
    "assumed_role authenticated_roles input output error created_at updated_at queue_name "
    "executor_id app_version"
).split()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "not a database URL"),
        ("mysql://root@localhost/db", "unsupported database"),
        ("sqlite://", "in-memory"),
        ("sqlite:///:memory:", "in-memory"),
        ("sqlite:/relative.sqlite", "not a database URL"),
        ("postgresql://localhost", "database name"),
    ],
)
def test_bad_database_urls_are_named(url: str, message: str) -> None:
    with pytest.raises(DBOSConfigurationError, match=message):
        DBOS(config={"name": "bad-url", "system_database_url": url})
    DBOS.destroy()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"name": ""}, "name"),
        ({"name": "has spaces"}, "name"),
        ({"name": "ok", "sys_db_pool_size": 0}, "sys_db_pool_size"),
        ({"name": "ok", "log_level": "LOUD"}, "log_level"),
        ({"name": "ok", "serializer": "json"}, "serializer"),
        ({"name": "ok", "dbos_system_schema": "bad-schema;"}, "dbos_system_schema"),
        ({"name": "ok", "system_databse_url": "sqlite:///x.sqlite"}, "Unknown DBOSConfig key"),
        ({"name": "ok", "admin_port": 70000}, "admin_port"),
    ],
)
def test_bad_config_values_are_named(config: dict[str, Any], message: str) -> None:
    with pytest.raises(DBOSConfigurationError, match=message):
        DBOS(config=config)  # type: ignore[arg-type]
    DBOS.destroy()


def test_default_url_is_sqlite_file_named_after_app(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DBOS_SYSTEM_DATABASE_URL", raising=False)
    instance = DBOS(config={"name": "my-app"})
    try:
        assert instance.config.system_database_url == "sqlite:///my-app.sqlite"
        DBOS.launch()
        assert (tmp_path / "my-app.sqlite").exists()
    finally:
        DBOS.destroy()


def test_unreachable_database_fails_within_bound() -> None:
    DBOS(
        config={
            "name": "unreachable",
            "system_database_url": "postgresql://postgres@127.0.0.1:1/nothing",
            "database_connect_timeout": 0.5,
        }
    )
    started = time.monotonic()
    try:
        with pytest.raises(DBOSDatabaseUnavailableError, match="127.0.0.1:1"):
            DBOS.launch()
    finally:
        DBOS.destroy()
    assert time.monotonic() - started < 15


def test_unopenable_sqlite_path_is_clear(tmp_path: Path) -> None:
    DBOS(
        config={
            "name": "nodir",
            "system_database_url": f"sqlite:///{tmp_path}/missing/dir/x.sqlite",
        }
    )
    try:
        with pytest.raises(DBOSDatabaseUnavailableError, match="directory"):
            DBOS.launch()
    finally:
        DBOS.destroy()


def test_status_has_every_seed_field(dbos: type[DBOS]) -> None:
    @DBOS.workflow()
    def wf() -> int:
        return 1

    status = DBOS.start_workflow(wf).get_status()
    for field in STATUS_FIELDS:
        assert hasattr(status, field), field


def test_json_serializer_round_trips(dbos_config: dict) -> None:
    DBOS.destroy()
    DBOS(config={**dbos_config, "serializer": JsonSerializer()})  # type: ignore[typeddict-item]
    DBOS.launch()
    try:

        @DBOS.step()
        def pack(d: dict[str, Any]) -> dict[str, Any]:
            return {"got": d, "n": [1, 2]}

        @DBOS.workflow()
        def wf(d: dict[str, Any]) -> dict[str, Any]:
            return pack(d)

        @DBOS.workflow()
        def fails() -> None:
            raise ValueError("json error")

        with SetWorkflowID("json-1"):
            assert wf({"a": 1}) == {"got": {"a": 1}, "n": [1, 2]}
        status = DBOS.retrieve_workflow("json-1").get_status()
        assert status.input == {"args": [], "kwargs": {}} or status.input == {
            "args": [{"a": 1}],
            "kwargs": {},
        }
        assert status.output == {"got": {"a": 1}, "n": [1, 2]}
        with pytest.raises(ValueError, match="json error"):
            DBOS.start_workflow(fails).get_result()
    finally:
        DBOS.destroy()


def test_reset_system_database(dbos_config: dict) -> None:
    DBOS.destroy()
    DBOS(config=dbos_config)  # type: ignore[arg-type]
    DBOS.launch()

    @DBOS.workflow()
    def wf() -> int:
        return 1

    with SetWorkflowID("before-reset"):
        wf()
    with pytest.raises(DBOSInitializationError, match="before DBOS.launch"):
        DBOS.reset_system_database()
    DBOS.destroy()
    DBOS(config=dbos_config)  # type: ignore[arg-type]
    DBOS.reset_system_database()
    DBOS.launch()
    try:
        from dbos_core.error import DBOSNonExistentWorkflowError

        with pytest.raises(DBOSNonExistentWorkflowError):
            DBOS.retrieve_workflow("before-reset")
    finally:
        DBOS.destroy()


MIGRATE = """
import sys, time
from dbos_core.storage.system_database import SystemDatabase
from dbos_core.serialization import PickleSerializer
url, start_at = sys.argv[1], float(sys.argv[2])
db = SystemDatabase(url, PickleSerializer())
while time.time() < start_at:
    pass
db.open(10)
print("ok", flush=True)
"""


def test_concurrent_first_launches_migrate_once(fresh_db_url: str, tmp_path: Path) -> None:
    script = tmp_path / "migrate.py"
    script.write_text(MIGRATE)
    start_at = str(time.time() + 1.0)
    procs = [spawn(script, fresh_db_url, start_at) for _ in range(4)]
    outputs = [p.communicate(timeout=60)[0].decode() for p in procs]
    for proc, out in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out
        assert "ok" in out
    from dbos_core.serialization import PickleSerializer
    from dbos_core.storage.migrations import LATEST_VERSION
    from dbos_core.storage.system_database import SystemDatabase

    db = SystemDatabase(fresh_db_url, PickleSerializer())
    try:
        import sqlalchemy as sa

        from dbos_core.storage.schema import migrations_table

        with db.db.connect() as conn:
            versions = conn.execute(sa.select(migrations_table.c.version)).scalars().all()
        assert sorted(versions) == list(range(1, LATEST_VERSION + 1))
    finally:
        db.close()


SLOW_MIGRATE = """
import sys, time
import dbos_core.storage.migrations as m
original = m.MIGRATIONS[0]
def slow(conn, db):
    original(conn, db)
    print("migrating", flush=True)
    time.sleep(60)
m.MIGRATIONS[0] = slow
from dbos_core.storage.system_database import SystemDatabase
from dbos_core.serialization import PickleSerializer
SystemDatabase(sys.argv[1], PickleSerializer()).open(10)
"""


def test_kill_during_first_migration_leaves_nothing_half_done(
    fresh_db_url: str, tmp_path: Path
) -> None:
    script = tmp_path / "slow_migrate.py"
    script.write_text(SLOW_MIGRATE)
    proc = spawn(script, fresh_db_url)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    assert "migrating" in line
    kill9(proc)
    # The killed transaction rolled back; a normal launch migrates from scratch.
    check = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\n" + MIGRATE.split("while")[0] + "db.open(10)\nprint('ok')",
            fresh_db_url,
            "0",
        ],
        env={"PYTHONPATH": str(ROOT)},
        capture_output=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stderr.decode()


@pytest.mark.skipif(BACKEND != "postgres", reason="schemas are a PostgreSQL feature")
def test_custom_system_schema(dbos_config: dict) -> None:
    DBOS.destroy()
    DBOS(config={**dbos_config, "dbos_system_schema": "custom_sys"})  # type: ignore[typeddict-item]
    DBOS.launch()
    try:

        @DBOS.workflow()
        def wf() -> int:
            return 5

        assert wf() == 5
        import sqlalchemy as sa

        rt = DBOS._current._runtime  # type: ignore[union-attr]
        with rt.sysdb.db.connect() as conn:
            count = conn.execute(
                sa.text("SELECT count(*) FROM custom_sys.workflow_status")
            ).scalar()
        assert count == 1
    finally:
        DBOS.destroy()


def test_import_is_light() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import sys, dbos_core; print('sqlalchemy' in sys.modules)"],
        env={"PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout.strip() == "False"


VERSION_APP = """
import sys
from dbos_core import DBOS
DBOS(config={"name": "versions", "system_database_url": sys.argv[1]})
@DBOS.workflow()
def wf() -> int:
    return BODY
DBOS.launch()
print(DBOS.application_version)
DBOS.destroy()
"""


def test_application_version_is_a_hash_of_workflow_source(db_url: str, tmp_path: Path) -> None:
    def version_of(body: str) -> str:
        script = tmp_path / f"app_{abs(hash(body))}.py"
        script.write_text(VERSION_APP.replace("BODY", body))
        out = subprocess.run(
            [sys.executable, str(script), db_url],
            env={"PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.strip().splitlines()[-1]

    first = version_of("1")
    assert first == version_of("1")
    assert first != version_of("2")
