"""Real processes: `manage.py` commands as a user types them, a real `runserver`, and a
server SIGKILLed right after its transaction committed, recovered by `manage.py dbos worker`."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import BACKEND, PG_SERVER, _pg_admin

ROOT = Path(__file__).resolve().parents[2]
MANAGE = ROOT / "tests" / "django" / "manage.py"


@dataclass
class Project:
    location: str
    env: dict[str, str]
    log: Path

    def url(self, suffix: str = "") -> str:
        if BACKEND == "postgres":
            return f"{PG_SERVER}/{self.location}{suffix}"
        name = {"": "default", "_system": "system", "_other": "other"}[suffix]
        return f"sqlite:///{self.location}/{name}.sqlite3"

    def manage(
        self, *args: str, timeout: float = 60, **env: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(MANAGE), *args],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
        )

    def spawn(self, *args: str, **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, str(MANAGE), *args],
            env={**self.env, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
        )

    def query(self, sql: str, suffix: str = "") -> list[Any]:
        engine = sa.create_engine(
            self.url(suffix).replace("postgresql://", "postgresql+psycopg://")
        )
        try:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.exec_driver_sql(sql)]
        finally:
            engine.dispose()

    def has_system_tables(self) -> bool:
        if BACKEND == "postgres":
            return bool(
                self.query(
                    "SELECT 1 FROM information_schema.tables WHERE table_schema = 'dbos'",
                    "_system",
                )
            )
        path = Path(self.location) / "system.sqlite3"
        if not path.exists():
            return False
        return bool(self.query("SELECT name FROM sqlite_master WHERE type='table'", "_system"))

    def executions(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


@pytest.fixture()
def project(tmp_path: Path) -> Iterator[Project]:
    if BACKEND == "postgres":
        location = f"dbos_djp_{uuid.uuid4().hex[:10]}"
        for suffix in ("", "_other", "_system"):
            _pg_admin(f'CREATE DATABASE "{location}{suffix}"')
    else:
        location = str(tmp_path / "db")
        Path(location).mkdir()
    log = tmp_path / "executions.log"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "tests.django.settings",
        "DBOS_DJANGO_DB": location,
        "DBOS_DJANGO_EXECUTION_LOG": str(log),
        "PYTHONUNBUFFERED": "1",
    }
    yield Project(location, env, log)
    if BACKEND == "postgres":
        for suffix in ("", "_other", "_system"):
            with contextlib.suppress(Exception):
                _pg_admin(f'DROP DATABASE IF EXISTS "{location}{suffix}" WITH (FORCE)')


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepared(project: Project) -> Project:
    """migrate, createsuperuser and check: none of them may launch DBOS."""
    outputs = [
        project.manage("migrate", "--noinput"),
        project.manage("migrate", "--database", "other", "--noinput"),
        project.manage(
            "createsuperuser", "--noinput", "--username", "alice", "--email", "a@example.org"
        ),
        project.manage("check"),
        project.manage("shell", "-c", "print('shell ok')"),
        project.manage("makemigrations", "--check", "--dry-run"),
    ]
    for result in outputs:
        ok(result)
        assert "DBOS launched" not in result.stdout + result.stderr
    assert not project.has_system_tables()
    return project


@contextlib.contextmanager
def runserver(project: Project, **env: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    port = free_port()
    proc = project.spawn("runserver", "--noreload", f"127.0.0.1:{port}", **env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                if httpx.get(f"{base}/admin/login/", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "runserver did not start"
            time.sleep(0.1)
        yield proc, base
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(20)


def test_migrate_and_check_do_not_launch(project: Project) -> None:
    prepared(project)
    # The checkpoint table comes from the app's own Django migration, on both aliases.
    assert project.query("SELECT count(*) FROM dbos_transaction_outputs") == [(0,)]
    assert project.query("SELECT count(*) FROM dbos_transaction_outputs", "_other") == [(0,)]


def test_real_runserver_and_commands(project: Project) -> None:
    prepared(project)
    with runserver(project) as (_, base):
        headers = {"dbos-idempotency-key": "real-1", "X-Test-User": "alice"}
        first = httpx.post(f"{base}/notes/?title=hello", headers=headers, timeout=30)
        assert first.status_code == 200, first.text
        body = first.json()
        assert body["workflow_id"] == "real-1"
        assert body["user"] == "alice" and body["roles"] == ["superuser", "staff"]
        again = httpx.post(f"{base}/notes/?title=hello", headers=headers, timeout=30)
        assert again.json() == body
        other = httpx.post(f"{base}/notes/?title=anon", timeout=30).json()
        assert other["workflow_id"] != "real-1" and other["user"] is None
        # alice's key is hers: nobody else gets her workflow, nor a word about it.
        stolen = httpx.post(
            f"{base}/notes/?title=hello", headers={"dbos-idempotency-key": "real-1"}, timeout=30
        )
        assert stolen.status_code == 409 and stolen.json()["error"] == "WORKFLOW_ID_CONFLICT"
        assert "alice" not in stolen.text
        # Keys are UTF-8 as sent; malformed ones are a 400 before any work.
        for bad in (b"\xff\xfe", b"k" * 10_000, b"tab\there", b""):
            refused = httpx.post(
                f"{base}/notes/?title=bad", headers={"dbos-idempotency-key": bad}, timeout=30
            )
            assert refused.status_code == 400 and refused.json()["error"] == "INVALID_ID"
        utf8 = httpx.post(
            f"{base}/notes/?title=utf8",
            headers={"dbos-idempotency-key": "café-☕".encode()},
            timeout=30,
        )
        assert utf8.status_code == 200 and utf8.json()["workflow_id"] == "café-☕"
    assert project.executions() == ["save_note:hello", "save_note:anon", "save_note:utf8"]

    listing = ok(project.manage("dbos", "workflow", "list"))
    assert "real-1" in listing and other["workflow_id"] in listing and "SUCCESS" in listing
    got = json.loads(ok(project.manage("dbos", "workflow", "get", "real-1", "--json")))
    assert got["status"] == "SUCCESS" and got["authenticated_user"] == "alice"
    steps = ok(project.manage("dbos", "workflow", "steps", "real-1"))
    assert "save_note" in steps and "describe" in steps
    filtered = ok(project.manage("dbos", "workflow", "list", "--user", "alice", "--json"))
    assert [w["workflow_id"] for w in json.loads(filtered)] == ["real-1"]
    forked = ok(
        project.manage("dbos", "workflow", "fork", "real-1", "--step", "2", "--new-id", "f-1")
    )
    assert "Forked real-1 from step 2 as f-1" in forked
    # The fork waits on the internal queue for a process to run it.
    assert "_dbos_internal_queue" in ok(project.manage("dbos", "queue", "list"))
    assert "f-1" in ok(project.manage("dbos", "queue", "list", "--workflows"))
    assert "Workflow f-1 is CANCELLED" in ok(project.manage("dbos", "workflow", "cancel", "f-1"))
    assert "f-1" not in ok(project.manage("dbos", "queue", "list", "--workflows"))
    resumed = ok(project.manage("dbos", "workflow", "resume", "f-1"))
    assert "Workflow f-1 is ENQUEUED" in resumed
    missing = project.manage("dbos", "workflow", "get", "nope")
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    usage = project.manage("dbos", "workflow", "frobnicate")
    assert usage.returncode == 2
    reset = ok(project.manage("dbos", "reset", "--yes"))
    assert "reset to schema version" in reset
    assert ok(project.manage("dbos", "workflow", "list")).strip() == "(none)"


def test_sigkill_after_commit_is_not_run_again(project: Project) -> None:
    prepared(project)
    with runserver(project, DBOS_DJANGO_KILL_AFTER_COMMIT="1") as (proc, base):
        with pytest.raises(httpx.TransportError):
            httpx.post(
                f"{base}/notes/?title=once",
                headers={"dbos-idempotency-key": "crash-1"},
                timeout=30,
            )
        proc.wait(20)
        assert proc.returncode == -signal.SIGKILL
    # The transaction committed (row and checkpoint); the system database has no step yet.
    assert project.query("SELECT title FROM testapp_note") == [("once",)]
    assert project.executions() == ["save_note:once"]
    status = json.loads(ok(project.manage("dbos", "workflow", "get", "crash-1", "--json")))
    assert status["status"] == "PENDING"

    worker = project.spawn("dbos", "worker")
    try:
        deadline = time.monotonic() + 60
        while True:
            got = json.loads(ok(project.manage("dbos", "workflow", "get", "crash-1", "--json")))
            if got["status"] == "SUCCESS":
                break
            assert worker.poll() is None, worker.stdout.read() if worker.stdout else ""
            assert time.monotonic() < deadline, got
            time.sleep(0.2)
    finally:
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=30)
    assert worker.returncode == 0, output
    assert "DBOS worker running" in output and "DBOS worker stopping" in output
    # Recovered from the checkpoint: the body never ran again, one row only.
    assert project.executions() == ["save_note:once"]
    assert project.query("SELECT title FROM testapp_note") == [("once",)]
    # The CLI shows a summary of the pickled output; decoding it is an explicit opt-in.
    assert got["output"].startswith("<pickle, ")
    decoded = json.loads(
        ok(project.manage("dbos", "workflow", "get", "crash-1", "--json", "--deserialize"))
    )
    assert "{'workflow_id': 'crash-1', 'count': 1" in decoded["output"]


def test_gunicorn_preload_launches_once_per_worker(project: Project) -> None:
    prepared(project)
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--preload",
            "--workers",
            "2",
            "--bind",
            f"127.0.0.1:{port}",
            "-c",
            str(ROOT / "tests" / "django" / "gunicorn_conf.py"),
            "tests.django.wsgi:application",
        ],
        env=project.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/admin/login/", timeout=5).status_code == 200:
                    break
            assert time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.1)
        headers = {"dbos-idempotency-key": "g-1", "X-Test-User": "alice"}
        bodies = [
            httpx.post(f"{base}/notes/?title=g", headers=headers, timeout=30).json()
            for _ in range(4)
        ]
        assert all(b == bodies[0] for b in bodies)
        assert bodies[0]["workflow_id"] == "g-1" and bodies[0]["user"] == "alice"
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    # The preloading master imported the app but did not launch; each worker did, once.
    assert output.count("DBOS launched") == 2, output
    assert project.executions() == ["save_note:g"]


def test_runserver_with_autoreload_launches_in_the_serving_child_only(project: Project) -> None:
    prepared(project)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(MANAGE), "runserver", f"127.0.0.1:{port}"],
        env=project.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        start_new_session=True,  # the file-watcher parent and its serving child
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None
            with contextlib.suppress(httpx.TransportError):
                response = httpx.post(
                    f"http://127.0.0.1:{port}/notes/?title=r",
                    headers={"dbos-idempotency-key": "reload-1"},
                    timeout=30,
                )
                if response.status_code == 200:
                    break
            assert time.monotonic() < deadline, "runserver did not start"
            time.sleep(0.2)
        assert response.json()["workflow_id"] == "reload-1"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert output.count("DBOS launched") == 1, output
