"""The README's transaction examples (core, FastAPI, Flask) run as written."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from fastapi.testclient import TestClient

from dbos_core import DBOS
from dbos_core.integration import set_transaction_backend_factory
from tests.conftest import BACKEND
from tests.core.crashutil import ROOT
from tests.readme import README, readme_section
from tests.transactions.common import app_databases, async_url, sync_url


def subsection(section: str, heading: str) -> str:
    """The ``### heading`` part of a ``## section``."""
    text = readme_section(section)
    start = text.index(f"\n### {heading}")
    end = text.find("\n### ", start + 5)
    return text[start : end if end != -1 else len(text)]


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, re.S)


def load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def app_db(tmp_path: Path) -> Iterator[str]:
    with app_databases(tmp_path, "readme_app") as (url,):
        yield url


def test_core_transactions_program(db_url: str, app_db: str, tmp_path: Path) -> None:
    [code] = python_blocks(readme_section("Transactions"))
    (tmp_path / "bank.py").write_text(code)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if BACKEND == "postgres":
        env.update(
            BANK_DB=sync_url(app_db),
            BANK_ASYNC_DB=async_url(app_db),
            DBOS_SYSTEM_DATABASE_URL=db_url,
        )
    else:  # the program's own defaults: SQLite files in its directory
        env.pop("DBOS_SYSTEM_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "bank.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    # The output the README shows, exactly.
    expected = re.search(r"\$ python bank.py\n(.*?)```", readme_section("Transactions"), re.S)
    assert expected is not None
    assert done.stdout == expected.group(1)
    if BACKEND == "sqlite":
        assert (tmp_path / "bank.sqlite").exists() and (tmp_path / "bank-dbos.sqlite").exists()


def test_fastapi_transactions_app(
    db_url: str, app_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    [code] = python_blocks(subsection("FastAPI", "Transactions"))
    (tmp_path / "todo_readme.py").write_text(code)
    monkeypatch.setenv("TODO_DB", sync_url(app_db))
    monkeypatch.setenv("TODO_ASYNC_DB", async_url(app_db))
    monkeypatch.setenv("DBOS_SYSTEM_DATABASE_URL", db_url)
    DBOS.destroy()
    module = load(tmp_path / "todo_readme.py", "todo_readme")
    try:
        with TestClient(module.app) as client:
            key = {"dbos-idempotency-key": "todo-1"}
            first = client.post("/todos", params={"title": "write docs"}, headers=key).json()
            again = client.post("/todos", params={"title": "write docs"}, headers=key).json()
            assert first == again  # the retried request was the same workflow: one row
            other = client.post("/todos", params={"title": "test them"}).json()
            assert other["id"] == first["id"] + 1
            done = client.post(f"/todos/{first['id']}/done")
            assert done.json() == {"id": first["id"], "done": True}
            assert client.get(f"/todos/{first['id']}").json() == {
                "id": first["id"],
                "title": "write docs",
                "done": True,
            }
            assert client.post("/todos/999/done").status_code == 404
            assert client.get("/todos/999").status_code == 404
    finally:
        sys.modules.pop("todo_readme", None)
        DBOS.destroy()
        module.engine.dispose()
        asyncio.run(module.async_engine.dispose())


def test_flask_transactions_app(
    db_url: str, app_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    [code] = python_blocks(subsection("Flask", "Transactions"))
    (tmp_path / "visits_readme.py").write_text(code)
    monkeypatch.setenv("FLASK_SQLALCHEMY_DATABASE_URI", sync_url(app_db))
    monkeypatch.setenv("FLASK_DBOS_SYSTEM_DATABASE_URL", db_url)
    DBOS.destroy()
    module = load(tmp_path / "visits_readme.py", "visits_readme")
    app = module.create_app()
    try:
        client = app.test_client()
        key = {"dbos-idempotency-key": "v-1"}
        assert client.post("/visits/home", headers=key).get_json() == {"visits": 1}
        assert client.post("/visits/home", headers=key).get_json() == {"visits": 1}
        assert client.post("/visits/home").get_json() == {"visits": 2}
        assert client.post("/visits/about").get_json() == {"visits": 1}
    finally:
        sys.modules.pop("visits_readme", None)
        module.dbos.destroy()
        with app.app_context():
            module.db.engine.dispose()
        set_transaction_backend_factory(None)


def test_readme_names_every_new_config_key() -> None:
    from dbos_core.config import KNOWN_KEYS

    text = README.read_text()
    for key in KNOWN_KEYS:
        if key.startswith("application_"):
            assert f"`{key}`" in text, key
