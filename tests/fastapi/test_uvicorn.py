"""DBOSMiddleware in a real uvicorn server process on a free local port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fastapi.helpers import ROOT, free_port


class Server:
    """One uvicorn process serving tests/fastapi/uvicorn_app.py."""

    def __init__(self, db_url: str, work: Path) -> None:
        self.db_url = db_url
        self.work = work
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "DBOS_SYSTEM_DATABASE_URL": self.db_url,
            "UVICORN_TEST_DIR": str(self.work),
        }
        with (self.work / "server.err").open("ab") as err:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "tests.fastapi.uvicorn_app:app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--log-level",
                    "warning",
                ],
                cwd=ROOT,
                env=env,
                stderr=err,
            )
        # uvicorn answers only after the lifespan startup (and so DBOS.launch) completed.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"uvicorn exited: {(self.work / 'server.err').read_text()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError("uvicorn did not start within 60s")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture()
def server(db_url: str, tmp_path: Path) -> Iterator[Server]:
    srv = Server(db_url, tmp_path)
    srv.start()
    yield srv
    srv.stop()


def log_lines(work: Path) -> list[str]:
    path = work / "log"
    return path.read_text().splitlines() if path.exists() else []


def wait_for(predicate: object, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_same_key_twice_and_concurrently_runs_once(server: Server) -> None:
    (server.work / "release-seq").touch()
    headers = {"dbos-idempotency-key": "order-seq", "x-user": "alice", "x-roles": "buyer"}
    first = httpx.post(server.url + "/orders/seq", headers=headers, timeout=30)
    second = httpx.post(server.url + "/orders/seq", headers=headers, timeout=30)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert first.json()["workflow_id"] == "order-seq"
    assert first.json()["user"] == "alice"

    # Concurrent: both requests are inside the server before the workflow may finish.
    results: list[httpx.Response] = []
    headers = {"dbos-idempotency-key": "order-conc"}

    def post() -> None:
        results.append(httpx.post(server.url + "/orders/conc", headers=headers, timeout=30))

    threads = [threading.Thread(target=post) for _ in range(2)]
    for t in threads:
        t.start()
    wait_for(
        lambda: (
            log_lines(server.work).count("request conc order-conc") == 2
            and "ship-waiting conc" in log_lines(server.work)
        ),
        "both requests in flight",
    )
    (server.work / "release-conc").touch()
    for t in threads:
        t.join(30)
    assert [r.status_code for r in results] == [200, 200]
    assert results[0].json() == results[1].json()
    assert results[0].json()["workflow_id"] == "order-conc"

    lines = log_lines(server.work)
    assert lines.count("reserve seq") == 1 and lines.count("ship seq") == 1
    assert lines.count("reserve conc") == 1 and lines.count("ship conc") == 1


def test_user_recorded_and_key_not_leaked(server: Server) -> None:
    (server.work / "release-u").touch()
    keyed = httpx.post(
        server.url + "/orders/u",
        headers={"dbos-idempotency-key": "order-u", "x-user": "bob", "x-roles": "admin,buyer"},
        timeout=30,
    ).json()
    plain = httpx.post(server.url + "/orders/u", timeout=30).json()
    assert keyed["workflow_id"] == "order-u"
    assert plain["workflow_id"] != "order-u"
    assert plain["user"] is None
    status = httpx.get(server.url + "/workflows/order-u", timeout=30).json()
    assert status == {"status": "SUCCESS", "user": "bob", "roles": ["admin", "buyer"]}
    anonymous = httpx.get(server.url + f"/workflows/{plain['workflow_id']}", timeout=30).json()
    assert anonymous == {"status": "SUCCESS", "user": None, "roles": None}
    assert log_lines(server.work).count("reserve u") == 2
    # DBOS errors come back as JSON.
    missing = httpx.get(server.url + "/workflows/nope", timeout=30)
    assert missing.status_code == 404 and missing.json()["error"] == "NONEXISTENT_WORKFLOW"


def test_sigkill_mid_workflow_then_restart_completes_it(server: Server) -> None:
    started = httpx.post(
        server.url + "/orders/crash/start",
        headers={"dbos-idempotency-key": "order-crash", "x-user": "carol", "x-roles": "buyer"},
        timeout=30,
    )
    assert started.json() == "order-crash"
    wait_for(lambda: "ship-waiting crash" in log_lines(server.work), "the second step")
    server.kill()
    (server.work / "release-crash").touch()

    server.start()  # the lifespan launches DBOS, which recovers the workflow
    result = httpx.get(server.url + "/workflows/order-crash/result", timeout=60)
    assert result.status_code == 200
    assert result.json() == {
        "workflow_id": "order-crash",
        "reserved": "reserved crash",
        "shipped": "shipped crash",
        "user": "carol",
    }
    lines = log_lines(server.work)
    assert lines.count("reserve crash") == 1  # the completed step did not run again
    assert lines.count("ship-waiting crash") == 2 and lines.count("ship crash") == 1
    status = httpx.get(server.url + "/workflows/order-crash", timeout=30).json()
    assert status == {"status": "SUCCESS", "user": "carol", "roles": ["buyer"]}
    # A retried request after the crash gets the stored result without new work.
    again = httpx.post(
        server.url + "/orders/crash",
        headers={"dbos-idempotency-key": "order-crash", "x-user": "carol"},
        timeout=30,
    )
    assert again.json()["shipped"] == "shipped crash"
    # The same key from another caller is refused without a word about carol's order.
    for other in ({"x-user": "mallory"}, {}):
        refused = httpx.post(
            server.url + "/orders/crash",
            headers={"dbos-idempotency-key": "order-crash", **other},
            timeout=30,
        )
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"] == "WORKFLOW_ID_CONFLICT"
        assert "carol" not in refused.text and "shipped" not in refused.text
    assert log_lines(server.work).count("reserve crash") == 1


def test_keys_are_read_as_sent_and_bad_ones_refused(server: Server) -> None:
    (server.work / "release-cafe").touch()
    sent = "café-☕-1".encode()
    placed = httpx.post(
        server.url + "/orders/cafe",
        headers={"dbos-idempotency-key": sent, "x-user": "zoe"},
        timeout=30,
    )
    assert placed.status_code == 200, placed.text
    assert placed.json()["workflow_id"] == "café-☕-1"
    status = httpx.get(server.url + "/workflows/café-☕-1", timeout=30).json()
    assert status["status"] == "SUCCESS"
    for bad in (b"\xff\xfe-latin-1", b"k" * 10_000, b"tab\there", b""):
        refused = httpx.post(
            server.url + "/orders/cafe", headers={"dbos-idempotency-key": bad}, timeout=30
        )
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"] == "INVALID_ID"
    assert log_lines(server.work).count("reserve cafe") == 1
