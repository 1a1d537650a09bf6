"""Flask-SQLAlchemy: models written through ``db.session`` (``DBOSFlask(db=db)``)."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from dbos_core import DBOS
from dbos_flask import DBOSFlask
from tests.transactions import common, harness

P = "suite.flask_sqlalchemy"


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class FlaskItem(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "txn_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(unique=True)


class FlaskCounter(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "txn_counters"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    value: Mapped[int]


def _insert(name: str) -> int:
    db.session.add(FlaskItem(name=name))
    db.session.flush()
    return int(db.session.scalar(sa.select(sa.func.count(FlaskItem.id))) or 0)


@DBOS.transaction(name=f"{P}.add_item")
def add_item(name: str, fail: bool) -> int:
    common.record(f"add_item:{name}")
    assert db.session() is DBOS.sql_session  # one session: the transaction's
    count = _insert(name)
    common.crash_point_in_body()
    if fail:
        raise ValueError(f"refused {name}")
    return count


@DBOS.workflow(name=f"{P}.add_item_workflow")
def add_item_workflow(name: str, fail: bool) -> int:
    return add_item(name, fail)


@DBOS.transaction(name=f"{P}.bump")
def bump(label: str) -> int:
    counter = db.session.get_one(FlaskCounter, 1)
    common.race.after_read(label)
    counter.value += 1
    db.session.commit()  # inside a DBOS transaction: flushes; the commit is DBOS's
    return counter.value


@DBOS.workflow(name=f"{P}.bump_workflow")
def bump_workflow(label: str) -> int:
    return bump(label)


def _level() -> str:
    return str(db.session.execute(sa.text("SHOW transaction_isolation")).scalar_one())


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
    return lambda session: _insert(name)


def create_app(sys_url: str, app_url: str, config: dict[str, Any]) -> tuple[Flask, DBOSFlask]:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = common.sync_url(app_url)
    db.init_app(app)
    dbos = DBOSFlask(app, config=config, db=db)  # type: ignore[arg-type]
    return app, dbos


class Harness(harness.Harness):
    name = "flask-sqlalchemy"
    app: Flask | None = None
    dbos: DBOSFlask | None = None

    @property
    def ops(self) -> ModuleType:
        import sys

        return sys.modules[__name__]

    def launch(self) -> None:
        self.app, self.dbos = create_app(self.sys_url, self.app_url, dict(self.base_config()))
        # The migrations story without Flask-Migrate: `flask dbos migrate`.
        result = self.app.test_cli_runner().invoke(args=["dbos", "migrate"])
        assert result.exit_code == 0, result.output
        assert "checkpoint table dbos_transaction_outputs is ready" in result.output
        self.dbos.launch(self.app)

    def destroy(self) -> None:
        if self.dbos is not None:
            self.dbos.destroy()
        if self.app is not None:
            with self.app.app_context():
                for engine in db.engines.values():
                    engine.dispose()
        from dbos_core.integration import set_transaction_backend_factory

        set_transaction_backend_factory(None)
