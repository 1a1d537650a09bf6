"""The application's own Engine / sessionmaker / AsyncEngine in DBOSConfig: validation,
one pool, the sessions of its factory, and the rules of async transactions."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker

from dbos_core import DBOS, DBOSConfig, SetWorkflowID
from dbos_core.config import resolve_config
from dbos_core.error import DBOSConfigurationError, DBOSException
from tests.transactions.common import async_url, items, sync_url


def config_with(**keys: Any) -> dict[str, Any]:
    return {"name": "cfg", "system_database_url": "sqlite:///cfg.sqlite", **keys}


def test_bad_engine_settings_are_refused_with_the_key_named(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'a.sqlite'}")
    other = sa.create_engine(f"sqlite:///{tmp_path / 'b.sqlite'}")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"application_database_engine": "sqlite:///x"}, "must be a sqlalchemy Engine"),
        ({"application_session_factory": Session}, "has no bind"),
        ({"application_session_factory": 42}, "sessionmaker or a Session subclass"),
        (
            {
                "application_database_engine": engine,
                "application_session_factory": sessionmaker(other),
            },
            "bound to another engine",
        ),
        (
            {"application_session_factory": sessionmaker(engine, binds={items: other})},
            "binds=",
        ),
        (
            {"application_database_engine": engine, "application_database_url": "sqlite:///x.db"},
            "give one of them",
        ),
        ({"application_database_engine": sa.create_engine("sqlite://")}, "in-memory"),
        (
            {
                "application_database_engine": sa.create_engine(
                    "mysql+pymysql://u@h/d", module=sqlite3
                )
            },
            "unsupported database 'mysql'",
        ),
        ({"application_async_engine": engine}, "must be a sqlalchemy AsyncEngine"),
        (
            {"application_async_session_factory": async_sessionmaker()},
            "application_async_session_factory'] has no bind",
        ),
    ]
    for keys, message in cases:
        with pytest.raises(DBOSConfigurationError, match=message):
            resolve_config(config_with(**keys))


def test_valid_engine_settings_resolve(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'a.sqlite'}")
    factory = sessionmaker(engine)
    resolved = resolve_config(config_with(application_session_factory=factory))
    assert resolved.application_database_engine is engine  # the factory's bind
    assert resolved.application_session_factory is factory
    aengine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'a.sqlite'}")
    resolved = resolve_config(
        config_with(
            application_async_engine=aengine, application_async_session_factory=AsyncSession
        )
    )
    assert resolved.application_async_engine is aengine
    assert resolved.application_async_session_factory is AsyncSession
    # Without any of them, nothing changes (and no async module is needed).
    assert resolve_config(config_with()).application_async_engine is None


class CountingSession(Session):
    made = 0

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        CountingSession.made += 1


@DBOS.transaction(name="engine_cfg.insert")
def insert(name: str) -> str:
    session = DBOS.sql_session
    session.execute(items.insert().values(name=name))
    return type(session).__name__


@DBOS.workflow(name="engine_cfg.insert_workflow")
def insert_workflow(name: str) -> str:
    return insert(name)


@pytest.fixture()
def app_engine(app_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(sync_url(app_url))
    yield engine
    engine.dispose()


def test_one_pool_and_the_applications_sessions(
    dbos_config: DBOSConfig, app_engine: sa.Engine
) -> None:
    checkouts: list[int] = []
    sa.event.listen(app_engine, "checkout", lambda *args: checkouts.append(1))
    DBOS.destroy()
    DBOS(
        config={
            **dbos_config,
            "application_session_factory": sessionmaker(app_engine, class_=CountingSession),
        }
    )
    DBOS.launch()
    try:
        before, made = len(checkouts), CountingSession.made
        with SetWorkflowID("wf-pool"):
            assert insert_workflow("pooled") == "CountingSession"
        # The transaction ran on the application's pool, with a session of its factory.
        assert len(checkouts) > before
        assert CountingSession.made == made + 1
        with app_engine.connect() as conn:
            assert conn.execute(sa.select(items.c.name)).scalars().all() == ["pooled"]
    finally:
        DBOS.destroy()


@DBOS.transaction(name="engine_cfg.async_insert")
async def async_insert(name: str) -> bool:
    await DBOS.sql_session.execute(items.insert().values(name=name))
    return isinstance(DBOS.sql_session, AsyncSession)


@DBOS.transaction(name="engine_cfg.sync_inside_async")
async def sync_inside_async() -> None:
    insert("nested")


@DBOS.workflow(name="engine_cfg.async_workflow")
async def async_workflow(name: str) -> bool:
    return await async_insert(name)


def test_async_transactions_rules(dbos_config: DBOSConfig, app_url: str) -> None:
    engine = create_async_engine(async_url(app_url))
    DBOS.destroy()
    DBOS(config={**dbos_config, "application_async_engine": engine})
    DBOS.launch()
    try:

        async def scenario() -> None:
            with SetWorkflowID("wf-async"):
                assert await async_workflow("async") is True
            # A sync transaction cannot join an async one (another session, another API).
            with pytest.raises(DBOSException, match="Cannot call the sync transaction"):
                await sync_inside_async()
            # Outside a workflow it is one transaction, without a checkpoint.
            assert await async_insert("plain") is True

        asyncio.run(scenario())
        steps = DBOS.list_workflow_steps("wf-async")
        assert [s["function_name"] for s in steps] == ["engine_cfg.async_insert"]
        sync_engine = sa.create_engine(sync_url(app_url))
        with sync_engine.connect() as conn:
            assert conn.execute(sa.select(items.c.name)).scalars().all() == ["async", "plain"]
        sync_engine.dispose()
    finally:
        DBOS.destroy()
        asyncio.run(engine.dispose())
