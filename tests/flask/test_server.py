"""DBOSFlask behind a real WSGI server (gunicorn) in child processes."""

from __future__ import annotations

import os
import signal
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from tests.core.crashutil import ROOT, lines, wait_for
from tests.flask.serverutil import FLASK, app_env, free_port, gunicorn

WSGI = "tests.flask.server_wsgi:app"
FACTORY = "tests.flask.server_app:create_app()"


def post(url: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    resp = httpx.post(url, headers=headers or {}, timeout=60)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def test_two_workers_concurrent_duplicates_users_and_no_leaks(db_url: str, tmp_path: Path) -> None:
    with gunicorn(WSGI, db_url, tmp_path, workers=2) as server:
        # Each worker launched its own DBOS after the fork, before serving.
        wait_for(lambda: len(lines(tmp_path / "launched")) == 2, what="both workers to launch")
        launched = set(lines(tmp_path / "launched"))
        assert len(launched) == 2 and str(server.proc.pid) not in launched

        # Concurrent duplicates, spread over both worker processes: the work runs once.
        headers = {"dbos-idempotency-key": "order-42", "X-User": "erin"}
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda _: post(server.url("/work/dup"), headers), range(8)))
        assert {r["workflow_id"] for r in results} == {"order-42"}
        assert {r["user"] for r in results} == {"erin"}
        assert [line.split()[0] for line in lines(tmp_path / "work")] == ["dup"]
        status = httpx.get(server.url("/workflows/order-42"), timeout=10).json()
        assert status == {"status": "SUCCESS", "user": "erin"}
        # erin's key is hers: another user, or nobody, gets a 409 that says nothing.
        for other in ({"X-User": "mallory"}, {}):
            stolen = httpx.post(
                server.url("/work/dup"), headers={"dbos-idempotency-key": "order-42", **other}
            )
            assert stolen.status_code == 409 and "erin" not in stolen.text
            assert stolen.json()["error"] == "WORKFLOW_ID_CONFLICT"
        # Keys are UTF-8 as sent; malformed ones are a 400 before any work.
        utf8 = httpx.post(
            server.url("/work/utf8"), headers={"dbos-idempotency-key": "café-☕".encode()}
        )
        assert utf8.status_code == 200 and utf8.json()["workflow_id"] == "café-☕"
        # (gunicorn itself answers 431 to a header over 8 kB; 5,000 characters pass it.)
        for bad in (b"\xff\xfe", b"k" * 5_000, b"tab\there", b""):
            refused = httpx.post(server.url("/work/bad"), headers={"dbos-idempotency-key": bad})
            assert refused.status_code == 400 and refused.json()["error"] == "INVALID_ID"
        assert [line.split()[0] for line in lines(tmp_path / "work")] == ["dup", "utf8"]

        # Sync workers serve every request on one thread: keys must not outlive their request.
        served: list[tuple[int, int]] = []
        unkeyed_ids: list[str] = []
        for i in range(6):
            keyed = post(server.url(f"/work/k{i}"), {"dbos-idempotency-key": f"key-{i}"})
            assert keyed["workflow_id"] == f"key-{i}"
            plain = post(server.url(f"/work/p{i}"))
            assert plain["user"] is None
            unkeyed_ids.append(plain["workflow_id"])
            served += [(keyed["pid"], keyed["thread"]), (plain["pid"], plain["thread"])]
        assert len(set(unkeyed_ids)) == 6
        assert not any(wid.startswith("key-") or wid == "order-42" for wid in unkeyed_ids)
        assert len(set(served)) <= 2  # the same threads were reused throughout


def test_preload_with_lazy_launch_launches_in_each_worker(db_url: str, tmp_path: Path) -> None:
    # --preload imports the app (init_app) in the master, which must launch nothing.
    with gunicorn(FACTORY, db_url, tmp_path, "--preload", workers=2) as server:
        for i in range(4):
            body = post(server.url(f"/work/pre{i}"))
            assert body["launched_pid"] == body["pid"] != server.proc.pid
    assert not (tmp_path / "launched").exists()
    assert len(lines(tmp_path / "work")) == 4


def test_sigkill_mid_workflow_then_restart_completes_it(db_url: str, tmp_path: Path) -> None:
    with gunicorn(WSGI, db_url, tmp_path) as first:
        started = post(first.url("/crash"), {"dbos-idempotency-key": "crash-1", "X-User": "dave"})
        assert started["workflow_id"] == "crash-1"
        wait_for(lambda: len(lines(tmp_path / "step2")) == 1, what="step 2 to start")
        first.kill9()
    first_worker = lines(tmp_path / "launched")[0]
    assert lines(tmp_path / "step1") == [first_worker]
    assert not (tmp_path / "done").exists()

    (tmp_path / "release").touch()
    with gunicorn(WSGI, db_url, tmp_path) as second:
        # Recovery runs at launch: no request is needed to finish the workflow.
        wait_for(lambda: (tmp_path / "done").exists(), what="the recovered workflow to finish")
        second_worker = lines(tmp_path / "launched")[1]
        status = httpx.get(second.url("/workflows/crash-1"), timeout=10).json()
    assert status == {"status": "SUCCESS", "user": "dave"}
    assert lines(tmp_path / "step1") == [first_worker]  # completed before the crash: not rerun
    assert lines(tmp_path / "step2") == [first_worker, second_worker]
    assert lines(tmp_path / "done") == [f"{second_worker} 50"]


def test_launch_before_fork_is_refused_in_workers(db_url: str, tmp_path: Path) -> None:
    # --preload with a launch at import launches in the master: workers must not use it.
    with gunicorn(WSGI, db_url, tmp_path, "--preload", workers=1) as server:
        resp = httpx.post(server.url("/work/forked"), timeout=30)
    assert resp.status_code == 500
    assert resp.json()["error"] == "INITIALIZATION_ERROR"
    # The reason is for the operator (the server log), not for the HTTP client.
    assert "before it forked" not in resp.json()["message"]
    assert "before it forked" in server.log.read_text()
    assert not (tmp_path / "work").exists()


def test_flask_run_with_reloader_launches_once_in_the_serving_child(
    db_url: str, tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "flask-run.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*FLASK, "run", "--debug", "--port", str(port)],
            cwd=ROOT,
            env=app_env(db_url, tmp_path),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            assert proc.poll() is None, log.read_text()
            try:
                httpx.get(f"{base}/health", timeout=2)
                return True
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=60, what="flask run to serve")
        bodies = [post(f"{base}/work/r{i}", {"dbos-idempotency-key": f"r{i}"}) for i in range(3)]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    # The reloader's parent (proc) imported the app but never launched; the child did, once.
    child = {b["pid"] for b in bodies}
    assert len(child) == 1 and proc.pid not in child
    assert {b["launched_pid"] for b in bodies} == child
    assert [b["workflow_id"] for b in bodies] == ["r0", "r1", "r2"]
    assert log.read_text().count("DBOS launched") == 1
