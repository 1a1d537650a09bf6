"""DBOSFlask(db=db): what is particular to Flask-SQLAlchemy (the shared properties of every
backend are in tests/transactions): db.session inside a transaction, the rule for a
request with uncommitted changes, bind keys, and the checkpoint table's migrations."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, g, jsonify
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import dbos_flask
from dbos_core import DBOS, DBOSConfig, SetWorkflowID
from dbos_core.error import DBOSConfigurationError, DBOSException
from dbos_core.integration import set_transaction_backend_factory
from dbos_core.transactions import DBOSTransactionEndedError
from dbos_flask import DBOSFlask
from tests.core.crashutil import ROOT
from tests.transactions.common import app_databases, sync_url


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Note(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "flask_notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(unique=True)


class LedgerEntry(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "flask_ledger"
    __bind_key__ = "ledger"
    id: Mapped[int] = mapped_column(primary_key=True)
    entry: Mapped[str]


seen: dict[str, Any] = {}


@DBOS.transaction(name="flask_sa.save_note")
def save_note(title: str, fail: bool = False) -> int:
    seen["same_session"] = db.session() is DBOS.sql_session
    seen["g_user"] = g.get("user")
    db.session.add(Note(title=title))
    db.session.commit()  # only flushes: the commit is DBOS's, with the checkpoint
    if fail:
        raise ValueError(f"refused {title}")
    return int(db.session.scalar(sa.select(sa.func.count(Note.id))) or 0)


@DBOS.transaction(name="flask_sa.rollback_inside")
def rollback_inside(title: str) -> None:
    db.session.add(Note(title=title))
    db.session.flush()
    db.session.rollback()


@DBOS.workflow(name="flask_sa.rollback_workflow")
def rollback_workflow(title: str) -> None:
    rollback_inside(title)


@dbos_flask.transaction(bind_key="ledger", name="flask_sa.record_entry")
def record_entry(entry: str) -> int:
    db.session.add(LedgerEntry(entry=entry))
    db.session.flush()
    return int(db.session.scalar(sa.select(sa.func.count(LedgerEntry.id))) or 0)


@dbos_flask.transaction(bind_key="ledger", name="flask_sa.note_on_ledger_bind")
def note_on_ledger_bind(title: str) -> None:
    db.session.add(Note(title=title))
    db.session.flush()


@DBOS.workflow(name="flask_sa.note_and_entry")
def note_and_entry(title: str) -> tuple[int, int]:
    return save_note(title), record_entry(f"noted {title}")


@pytest.fixture()
def app_urls(tmp_path: Path) -> Iterator[tuple[str, str]]:
    with app_databases(tmp_path, "app", "ledger") as (app_url, ledger_url):
        yield app_url, ledger_url


def make_app(dbos_config: DBOSConfig, app_url: str, ledger_url: str) -> tuple[Flask, DBOSFlask]:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = sync_url(app_url)
    app.config["SQLALCHEMY_BINDS"] = {"ledger": sync_url(ledger_url)}
    db.init_app(app)
    ext = DBOSFlask(app, config=dict(dbos_config), db=db)  # type: ignore[arg-type]

    @app.post("/notes/<title>")
    def add_note(title: str) -> Any:
        g.user = "ann"
        return jsonify({"count": save_note(title)})

    @app.post("/pending/<title>")
    def pending_then_transaction(title: str) -> Any:
        db.session.add(Note(title=f"pending {title}"))
        return jsonify({"count": save_note(title)})

    @app.post("/flushed/<title>")
    def flushed_then_transaction(title: str) -> Any:
        db.session.add(Note(title=f"flushed {title}"))
        db.session.flush()
        return jsonify({"count": save_note(title)})

    @app.post("/committed/<title>")
    def committed_then_transaction(title: str) -> Any:
        db.session.add(Note(title=f"first {title}"))
        db.session.commit()
        return jsonify({"count": save_note(title)})

    @app.get("/reread/<title>")
    def reread(title: str) -> Any:
        # An object loaded before the transaction, read again after it.
        before = db.session.scalar(sa.select(sa.func.count(Note.id)))
        first = db.session.get(Note, 1)
        assert first is not None
        first_title = first.title
        save_note(title)
        first.title  # noqa: B018 (reloaded: expired by the transaction)
        after = db.session.scalar(sa.select(sa.func.count(Note.id)))
        return jsonify({"before": before, "after": after, "first": first_title})

    return app, ext


@pytest.fixture()
def flask_db(
    dbos_config: DBOSConfig, app_urls: tuple[str, str]
) -> Iterator[tuple[Flask, DBOSFlask]]:
    DBOS.destroy()
    app, ext = make_app(dbos_config, *app_urls)
    with app.app_context():
        db.create_all()  # the checkpoint tables of both binds come with db.metadata
    ext.launch(app)
    yield app, ext
    ext.destroy()
    with app.app_context():
        for engine in db.engines.values():
            engine.dispose()
    set_transaction_backend_factory(None)


def notes(app: Flask) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(sa.select(Note.title).order_by(Note.id)))


def test_db_session_is_the_transactions_session_in_a_request(
    flask_db: tuple[Flask, DBOSFlask],
) -> None:
    app, _ = flask_db
    client = app.test_client()
    assert client.post("/notes/first").get_json() == {"count": 1}
    # In the request's own app context: the same session, and the request's g.
    assert seen == {"same_session": True, "g_user": "ann"}
    assert notes(app) == ["first"]
    # Objects the request loaded earlier are fresh after the transaction.
    assert client.get("/reread/second").get_json() == {"before": 1, "after": 2, "first": "first"}


def test_uncommitted_changes_in_the_request_are_refused(
    flask_db: tuple[Flask, DBOSFlask], caplog: pytest.LogCaptureFixture
) -> None:
    app, _ = flask_db
    client = app.test_client()
    for route in ("pending", "flushed"):
        caplog.clear()
        response = client.post(f"/{route}/x")
        assert response.status_code == 500
        body = response.get_json()
        assert body["error"] == "FLASK_SESSION_HAS_CHANGES"
        # A 5xx body carries only the code; the explanation goes to the log.
        assert "commit them first" not in body["message"]
        assert "commit them first" in caplog.text
    assert notes(app) == []  # neither the request's changes nor the transaction's
    # Committed first, the same request works.
    assert client.post("/committed/y").get_json() == {"count": 2}
    assert notes(app) == ["first y", "y"]


def test_a_workflow_on_two_binds_checkpoints_each_in_its_own_database(
    flask_db: tuple[Flask, DBOSFlask], app_urls: tuple[str, str]
) -> None:
    app, _ = flask_db
    with SetWorkflowID("wf-binds"):
        assert note_and_entry("ledgered") == (1, 1)
    assert notes(app) == ["ledgered"]
    app_url, ledger_url = app_urls
    for url, expected in ((app_url, [(1,)]), (ledger_url, [(2,)])):
        engine = sa.create_engine(sync_url(url))
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT function_id FROM dbos_transaction_outputs WHERE workflow_uuid = :w"
                ),
                {"w": "wf-binds"},
            ).all()
        engine.dispose()
        assert [tuple(r) for r in rows] == expected
    # A model of the default bind inside a transaction of the ledger bind is refused:
    # its write would not commit with that transaction's checkpoint.
    with app.app_context(), pytest.raises(DBOSException, match="another database"):
        note_on_ledger_bind("misplaced")
    assert notes(app) == ["ledgered"]


def test_ending_the_transaction_inside_is_an_error_and_commits_nothing(
    flask_db: tuple[Flask, DBOSFlask],
) -> None:
    app, _ = flask_db
    with SetWorkflowID("wf-rolled-back"), pytest.raises(DBOSTransactionEndedError):
        rollback_workflow("gone")
    # commit() inside only flushed: the exception after it rolls everything back.
    with pytest.raises(ValueError, match="refused late"):
        save_note("late", fail=True)
    assert notes(app) == []
    assert DBOS.retrieve_workflow("wf-rolled-back").get_status().status == "ERROR"


def test_missing_checkpoint_table_names_the_commands(
    dbos_config: DBOSConfig, app_urls: tuple[str, str]
) -> None:
    DBOS.destroy()
    app, ext = make_app(dbos_config, *app_urls)
    with app.app_context():
        Note.__table__.create(db.engine)  # the app's tables, not DBOS's
    ext.launch(app)
    try:
        with SetWorkflowID("wf-no-table"), pytest.raises(DBOSException, match="flask dbos migrate"):
            note_and_entry("x")
        assert notes(app) == []
        # `flask dbos migrate` creates it in every bind transactions use.
        result = app.test_cli_runner().invoke(args=["dbos", "migrate"])
        assert result.exit_code == 0, result.output
        assert "dbos_transaction_outputs is ready (default bind)" in result.output
        assert "dbos_transaction_outputs is ready (bind 'ledger')" in result.output
    finally:
        ext.destroy()
        set_transaction_backend_factory(None)


def test_db_with_another_application_database_is_refused(dbos_config: DBOSConfig) -> None:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///unused.sqlite"
    app.config["DBOS_APPLICATION_DATABASE_URL"] = "sqlite:///other.sqlite"
    db.init_app(app)
    with pytest.raises(DBOSConfigurationError, match="give one of them"):
        DBOSFlask(app, config=dict(dbos_config), db=db)  # type: ignore[arg-type]
    with pytest.raises(DBOSConfigurationError, match="flask_sqlalchemy.SQLAlchemy"):
        DBOSFlask(Flask("other"), db=object())
    set_transaction_backend_factory(None)


MIGRATE_APP = """
import os
from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from dbos_core import DBOS
from dbos_flask import DBOSFlask


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
dbos = DBOSFlask(db=db)


class Greeting(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]


@DBOS.transaction()
def greet(name):
    db.session.add(Greeting(name=name))
    return name


@DBOS.workflow()
def greeting(name):
    return greet(name)


app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["APP_DB"]
app.config["DBOS_SYSTEM_DATABASE_URL"] = os.environ["SYS_DB"]
db.init_app(app)
Migrate(app, db)
dbos.init_app(app)


@app.cli.command("greet")
def greet_command():
    dbos.launch(app)
    print("greeted", greeting("ada"))
    dbos.destroy()
"""


def test_flask_migrate_generates_and_applies_the_checkpoint_table(
    db_url: str, app_urls: tuple[str, str], tmp_path: Path
) -> None:
    (tmp_path / "migrate_app.py").write_text(MIGRATE_APP)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "APP_DB": sync_url(app_urls[0]),
        "SYS_DB": db_url,
    }

    def flask(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "migrate_app", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout + done.stderr

    flask("db", "init")
    flask("db", "migrate", "-m", "greetings and dbos")
    [revision] = (tmp_path / "migrations" / "versions").glob("*.py")
    generated = revision.read_text()
    assert "op.create_table('dbos_transaction_outputs'" in generated
    assert "op.create_table('greeting'" in generated
    flask("db", "upgrade")
    assert "greeted ada" in flask("greet")
    engine = sa.create_engine(env["APP_DB"])
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT name FROM greeting")).scalars().all() == ["ada"]
        assert conn.execute(sa.text("SELECT count(*) FROM dbos_transaction_outputs")).scalar() == 1
    engine.dispose()
