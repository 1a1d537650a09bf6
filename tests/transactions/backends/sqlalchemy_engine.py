"""The application's own Engine and a SQLModel Session as the session factory."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel, func, select

from dbos_core import DBOS
from tests.transactions import common, harness

P = "suite.sqlalchemy_engine"


class SuiteItem(SQLModel, table=True):
    __tablename__ = "txn_items"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)


class SuiteCounter(SQLModel, table=True):
    __tablename__ = "txn_counters"
    id: int = Field(primary_key=True)
    value: int


def _insert(session: Session, name: str) -> int:
    session.add(SuiteItem(name=name))
    session.flush()
    return int(session.exec(select(func.count()).select_from(SuiteItem)).one())


@DBOS.transaction(name=f"{P}.add_item")
def add_item(name: str, fail: bool) -> int:
    common.record(f"add_item:{name}")
    session: Session = DBOS.sql_session
    assert isinstance(session, Session)  # the configured factory made it
    count = _insert(session, name)
    common.crash_point_in_body()
    if fail:
        raise ValueError(f"refused {name}")
    return count


@DBOS.workflow(name=f"{P}.add_item_workflow")
def add_item_workflow(name: str, fail: bool) -> int:
    return add_item(name, fail)


@DBOS.transaction(name=f"{P}.bump")
def bump(label: str) -> int:
    session: Session = DBOS.sql_session
    counter = session.exec(select(SuiteCounter).where(SuiteCounter.id == 1)).one()
    common.race.after_read(label)
    counter.value += 1
    session.add(counter)
    session.flush()
    return counter.value


@DBOS.workflow(name=f"{P}.bump_workflow")
def bump_workflow(label: str) -> int:
    return bump(label)


def _level() -> str:
    return str(DBOS.sql_session.execute(sa.text("SHOW transaction_isolation")).scalar_one())


@DBOS.transaction(name=f"{P}.level_default")
def level_default() -> str:
    return _level()


@DBOS.transaction("REPEATABLE READ", name=f"{P}.level_declared")
def level_declared() -> str:
    return _level()


@DBOS.workflow(name=f"{P}.isolation_workflow")
def isolation_workflow() -> tuple[str, str]:
    return level_default(), level_declared()


def insert_body(name: str) -> Callable[[Any], int]:
    return lambda session: _insert(session, name)


class Harness(harness.Harness):
    name = "sqlalchemy-engine"
    checkpoint_schema = "dbos"
    checkpoint_table = "transaction_outputs"
    engine: sa.Engine | None = None

    @property
    def ops(self) -> ModuleType:
        import sys

        return sys.modules[__name__]

    def launch(self) -> None:
        self.engine = sa.create_engine(common.sync_url(self.app_url))
        DBOS(
            config={
                **self.base_config(),
                "application_database_engine": self.engine,
                "application_session_factory": Session,
            }
        )
        DBOS.launch()

    def destroy(self) -> None:
        super().destroy()
        if self.engine is not None:
            self.engine.dispose()
