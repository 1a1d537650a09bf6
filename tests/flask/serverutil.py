"""Run the test Flask app in real processes: gunicorn servers and ``flask`` commands."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.core.crashutil import ROOT, wait_for

FLASK = [sys.executable, "-m", "flask", "--app", "tests.flask.server_app:create_app"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def app_env(db_url: str, marker_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MARKER_DIR": str(marker_dir),
        "FLASK_DBOS_SYSTEM_DATABASE_URL": db_url,
    }


class Server:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.proc = proc
        self.base = f"http://127.0.0.1:{port}"
        self.log = log

    def url(self, path: str) -> str:
        return self.base + path

    def kill9(self) -> None:
        """SIGKILL the master and its workers at once (a machine losing power)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill9()


@contextlib.contextmanager
def gunicorn(
    target: str, db_url: str, marker_dir: Path, *extra: str, workers: int = 1
) -> Iterator[Server]:
    port = free_port()
    log = marker_dir / f"gunicorn-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-b",
                f"127.0.0.1:{port}",
                "-w",
                str(workers),
                "--graceful-timeout",
                "5",
                *extra,
                target,
            ],
            cwd=ROOT,
            env=app_env(db_url, marker_dir),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(proc, port, log)
    try:

        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"gunicorn exited:\n{log.read_text()}")
            try:
                httpx.get(server.url("/health"), timeout=2)
                return True  # serving (a 500 is a response too: some tests want one)
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=60, what="gunicorn to serve")
        yield server
    finally:
        server.stop()


def flask_cmd(
    db_url: str, marker_dir: Path, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``flask --app tests.flask.server_app dbos ...`` as a user would type it."""
    return subprocess.run(
        [*FLASK, *args],
        cwd=ROOT,
        env=app_env(db_url, marker_dir),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
