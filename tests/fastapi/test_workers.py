"""Several gunicorn worker processes (forked after --preload), each launching its own DBOS."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from tests.fastapi.helpers import ROOT, free_port


def test_gunicorn_workers_each_launch_and_share_idempotency(db_url: str, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DBOS_SYSTEM_DATABASE_URL": db_url, "UVICORN_TEST_DIR": str(tmp_path)}
    err_path = tmp_path / "gunicorn.err"
    (tmp_path / "release-multi").touch()
    with err_path.open("wb") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--preload",  # the app is imported before the fork: nothing of DBOS may cross it
                "-w",
                "2",
                "-k",
                "uvicorn.workers.UvicornWorker",
                "-b",
                f"127.0.0.1:{port}",
                "tests.fastapi.uvicorn_app:app",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        deadline = time.monotonic() + 60
        # Both workers report a completed startup (and so a launched DBOS) before we go on.
        while err_path.read_text().count("Application startup complete") < 2:
            assert proc.poll() is None, err_path.read_text()
            assert time.monotonic() < deadline, err_path.read_text()
            time.sleep(0.05)
        results: list[httpx.Response] = []

        def post() -> None:
            results.append(
                httpx.post(
                    url + "/orders/multi",
                    headers={"dbos-idempotency-key": "multi-1", "x-user": "dana"},
                    timeout=30,
                )
            )

        threads = [threading.Thread(target=post) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert [r.status_code for r in results] == [200] * 6
        assert all(r.json() == results[0].json() for r in results)
        assert results[0].json()["workflow_id"] == "multi-1"
        assert results[0].json()["user"] == "dana"
        log = (tmp_path / "log").read_text().splitlines()
        assert log.count("reserve multi") == 1 and log.count("ship multi") == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    text = err_path.read_text()
    assert text.count("DBOS launched") == 2
    assert text.count("Application shutdown complete") == 2
