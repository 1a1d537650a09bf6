"""Async transactions: an AsyncEngine (aiosqlite / psycopg async) and AsyncSession."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from dbos_core import DBOS
from tests.transactions import common, harness

P = "suite.sqlalchemy_async"


class Base(DeclarativeBase):
    pass


class AsyncItem(Base):
    __tablename__ = "txn_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(unique=True)


class AsyncCounter(Base):
    __tablename__ = "txn_counters"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    value: Mapped[int]


async def _insert(session: AsyncSession, name: str) -> int:
    session.add(AsyncItem(name=name))
    await session.flush()
    return int((await session.execute(sa.select(sa.func.count(AsyncItem.id)))).scalar_one())


@DBOS.transaction(name=f"{P}.add_item")
async def add_item(name: str, fail: bool) -> int:
    common.record(f"add_item:{name}")
    session: AsyncSession = DBOS.sql_session
    assert isinstance(session, AsyncSession)
    count = await _insert(session, name)
    common.crash_point_in_body()
    if fail:
        raise ValueError(f"refused {name}")
    return count


@DBOS.workflow(name=f"{P}.add_item_workflow")
async def add_item_workflow(name: str, fail: bool) -> int:
    return await add_item(name, fail)


@DBOS.transaction(name=f"{P}.bump")
async def bump(label: str) -> int:
    session: AsyncSession = DBOS.sql_session
    counter = await session.get_one(AsyncCounter, 1)
    await common.race.after_read_async(label)
    counter.value += 1
    await session.flush()
    return counter.value


@DBOS.workflow(name=f"{P}.bump_workflow")
async def bump_workflow(label: str) -> int:
    return await bump(label)


async def _level() -> str:
    result = await DBOS.sql_session.execute(sa.text("SHOW transaction_isolation"))
    return str(result.scalar_one())


@DBOS.transaction(name=f"{P}.level_default")
async def level_default() -> str:
    return await _level()


@DBOS.transaction("REPEATABLE READ", name=f"{P}.level_declared")
async def level_declared() -> str:
    return await _level()


@DBOS.workflow(name=f"{P}.isolation_workflow")
async def isolation_workflow() -> tuple[str, str]:
    return await level_default(), await level_declared()


def insert_body(name: str) -> Callable[[Any], Awaitable[int]]:
    return lambda session: _insert(session, name)


class Harness(harness.AsyncHarness):
    name = "sqlalchemy-async"
    checkpoint_schema = "dbos"
    checkpoint_table = "transaction_outputs"
    engine: AsyncEngine | None = None

    @property
    def ops(self) -> ModuleType:
        import sys

        return sys.modules[__name__]

    def launch(self) -> None:
        self.engine = create_async_engine(common.async_url(self.app_url))
        factory = async_sessionmaker(self.engine, expire_on_commit=False)
        DBOS(config={**self.base_config(), "application_async_session_factory": factory})
        DBOS.launch()

    def destroy(self) -> None:
        import asyncio

        super().destroy()
        if self.engine is not None:
            asyncio.run(self.engine.dispose())
