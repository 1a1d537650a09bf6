"""The core's default backend: DBOS.sql_session on ``application_database_url``."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import sqlalchemy as sa

from dbos_core import DBOS
from tests.transactions import common, harness
from tests.transactions.common import counters, items

P = "suite.sqlalchemy_url"


def _insert(session: Any, name: str) -> int:
    session.execute(items.insert().values(name=name))
    return int(session.execute(sa.select(sa.func.count()).select_from(items)).scalar_one())


@DBOS.transaction(name=f"{P}.add_item")
def add_item(name: str, fail: bool) -> int:
    common.record(f"add_item:{name}")
    count = _insert(DBOS.sql_session, name)
    common.crash_point_in_body()
    if fail:
        raise ValueError(f"refused {name}")
    return count


@DBOS.workflow(name=f"{P}.add_item_workflow")
def add_item_workflow(name: str, fail: bool) -> int:
    return add_item(name, fail)


@DBOS.transaction(name=f"{P}.bump")
def bump(label: str) -> int:
    session = DBOS.sql_session
    value = session.execute(sa.select(counters.c.value).where(counters.c.id == 1)).scalar_one()
    common.race.after_read(label)
    session.execute(counters.update().where(counters.c.id == 1).values(value=value + 1))
    return int(value) + 1


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
    name = "sqlalchemy-url"
    checkpoint_schema = "dbos"
    checkpoint_table = "transaction_outputs"

    @property
    def ops(self) -> ModuleType:
        import sys

        return sys.modules[__name__]

    def launch(self) -> None:
        DBOS(config={**self.base_config(), "application_database_url": self.app_url})
        DBOS.launch()
