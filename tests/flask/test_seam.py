"""The parts of dbos_core/integration.py that the Flask adapter added to the seam."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from dbos_core import DBOS, DBOSConfig
from dbos_core import integration as seam
from dbos_core.error import DBOSConfigurationError, DBOSInitializationError
from dbos_core.runtime import runtime as runtime_module


class RecordingService:
    def __init__(self, events: list[str]) -> None:
        self.events = events

    def start(self) -> None:
        self.events.append("start")

    def stop(self) -> None:
        self.events.append("stop")


@pytest.fixture()
def service_events() -> Iterator[list[str]]:
    events: list[str] = []

    def factory(_rt: Any) -> RecordingService:
        return RecordingService(events)

    runtime_module.service_factories.append(factory)
    DBOS.destroy()
    yield events
    runtime_module.service_factories.remove(factory)
    DBOS.destroy()


def test_management_session_starts_no_service_and_ends_destroyed(
    service_events: list[str], dbos_config: DBOSConfig
) -> None:
    DBOS(config=dbos_config)
    with seam.management_session():
        assert seam.is_launched()
        assert DBOS.retrieve_workflow("x", existing_workflow=False).workflow_id == "x"
    assert service_events == []
    assert not seam.is_configured()
    # A full launch starts the services the session left out.
    DBOS(config=dbos_config)
    DBOS.launch()
    assert service_events == ["start"]


def test_management_session_leaves_a_launched_dbos_running(
    service_events: list[str], dbos_config: DBOSConfig
) -> None:
    DBOS(config=dbos_config)
    DBOS.launch()
    with seam.management_session():
        pass
    assert seam.is_launched()


def test_session_and_migrate_need_a_configuration(service_events: list[str]) -> None:
    with pytest.raises(DBOSInitializationError, match="Configure"), seam.management_session():
        pass
    with pytest.raises(DBOSInitializationError, match="Configure"):
        seam.migrate_system_database()


def test_migrate_without_launch(
    service_events: list[str], dbos_config: DBOSConfig, db_url: str
) -> None:
    import sqlalchemy as sa

    DBOS(config=dbos_config)
    seam.migrate_system_database()
    assert not seam.is_launched() and service_events == []
    engine = sa.create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        schema = None if db_url.startswith("sqlite") else "dbos"
        assert "workflow_status" in sa.inspect(engine).get_table_names(schema=schema)
    finally:
        engine.dispose()


def test_validate_config_and_keys() -> None:
    seam.validate_config({"name": "ok"})
    with pytest.raises(DBOSConfigurationError, match="Unknown DBOSConfig key"):
        seam.validate_config({"name": "ok", "nope": 1})
    assert {"name", "system_database_url", "executor_id"} <= seam.config_keys()


def test_instance_token_changes_when_dbos_is_recreated(
    service_events: list[str], dbos_config: DBOSConfig
) -> None:
    assert seam.instance_token() is None
    DBOS(config=dbos_config)
    first = seam.instance_token()
    DBOS(config=dbos_config)
    assert seam.instance_token() is not first and seam.instance_token() is not None
