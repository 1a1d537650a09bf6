"""example_projects/django_notes, started by its one command in a real process."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import BACKEND, PG_SERVER, _pg_admin
from tests.django.test_processes import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def notes_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    if BACKEND == "postgres":
        name = f"dbos_notes_{uuid.uuid4().hex[:10]}"
        _pg_admin(f'CREATE DATABASE "{name}"')
        env["NOTES_PG_NAME"] = name
        server = urlsplit(PG_SERVER)
        env["NOTES_PG_HOST"] = server.hostname or "127.0.0.1"
        env["NOTES_PG_PORT"] = str(server.port or 5432)
        env["NOTES_PG_USER"] = server.username or "postgres"
    else:
        env["NOTES_DB_PATH"] = str(tmp_path / "notes.sqlite3")
    yield env
    if BACKEND == "postgres":
        with contextlib.suppress(Exception):
            _pg_admin(f'DROP DATABASE IF EXISTS "{env["NOTES_PG_NAME"]}" WITH (FORCE)')


def test_notes_example(notes_env: dict[str, str], tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "example_projects.django_notes", "--port", str(port)],
        env=notes_env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/admin/login/", timeout=5).status_code == 200:
                    break
            assert time.monotonic() < deadline
            time.sleep(0.1)
        note = {"title": "Hello", "body": "durable workflows in Django"}
        headers = {"dbos-idempotency-key": "note-1"}
        started = httpx.post(f"{base}/notes/", content=json.dumps(note), headers=headers)
        assert started.status_code == 202 and started.json() == {"workflow_id": "note-1"}
        # A retry with the same key is the same workflow.
        retry = httpx.post(f"{base}/notes/", content=json.dumps(note), headers=headers)
        assert retry.json() == {"workflow_id": "note-1"}
        deadline = time.monotonic() + 30
        while (status := httpx.get(f"{base}/notes/note-1/").json())["status"] != "SUCCESS":
            assert time.monotonic() < deadline, status
            time.sleep(0.1)
        assert status["result"] == {"note_id": 1, "words": 4, "author": None}
        assert httpx.get(f"{base}/notes/unknown/").status_code == 404

        with httpx.Client(base_url=base) as browser:
            browser.get("/admin/login/")
            token = browser.cookies["csrftoken"]
            login = browser.post(
                "/admin/login/?next=/admin/",
                data={"username": "demo", "password": "demo", "csrfmiddlewaretoken": token},
                headers={"Referer": f"{base}/admin/login/"},
            )
            assert login.status_code == 302
            listing = browser.get("/admin/dbos_django/workflow/").text
            assert "note-1" in listing and "SUCCESS" in listing
            detail = browser.get("/admin/dbos_django/workflow/note-1/").text
            assert all(step in detail for step in ("save_draft", "count_words", "publish"))
            notes = browser.get("/admin/notes/note/").text
            assert re.search(r">Hello<", notes)
    finally:
        proc.terminate()
        proc.wait(20)
    steps = subprocess.run(
        [
            sys.executable,
            "example_projects/django_notes/manage.py",
            "dbos",
            "workflow",
            "steps",
            "note-1",
        ],
        env=notes_env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert steps.returncode == 0, steps.stderr
    assert "save_draft" in steps.stdout and "count_words" in steps.stdout
