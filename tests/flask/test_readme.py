"""The README's Flask example runs as written, under ``flask run``, with its commands."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.core.crashutil import ROOT, wait_for
from tests.flask.serverutil import free_port
from tests.readme import readme_section

SECTION = readme_section("Flask")


def test_readme_flask_example(db_url: str, tmp_path: Path) -> None:
    code = re.findall(r"```python\n(.*?)```", SECTION, re.S)[0]
    (tmp_path / "app.py").write_text(code)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FLASK_DBOS_SYSTEM_DATABASE_URL": db_url}

    def flask(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "flask", "--app", "app", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert flask("dbos", "migrate").returncode == 0
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "app", "run", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            assert server.poll() is None
            try:
                return httpx.get(f"{base}/orders/none", timeout=2).status_code == 404
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=60, what="flask run to serve")
        key = {"dbos-idempotency-key": "order-1"}
        ann = {**key, "X-User": "ann"}
        first = httpx.post(f"{base}/checkout/book", headers=ann, timeout=30)
        again = httpx.post(f"{base}/checkout/book", headers=ann, timeout=30)
        assert first.status_code == again.status_code == 200
        assert first.json() == again.json()
        # The key is ann's: an anonymous caller (or another user) gets a 409, not her order.
        stolen = httpx.post(f"{base}/checkout/book", headers=key, timeout=30)
        assert stolen.status_code == 409
        assert stolen.json()["error"] == "WORKFLOW_ID_CONFLICT"
        assert "ann" not in stolen.text and "charged" not in stolen.text
        assert httpx.get(f"{base}/orders/order-1", timeout=30).status_code == 404
        mine = httpx.get(f"{base}/orders/order-1", headers={"X-User": "ann"}, timeout=30)
        assert mine.json()["status"] == "SUCCESS"
        assert first.json() == {
            "order_id": "order-1",
            "steps": ["reserved book for order-1", "charged order-1"],
            "user": "ann",
        }
        other = httpx.post(f"{base}/checkout/pen", timeout=30).json()
        assert other["order_id"] != "order-1" and other["user"] is None
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(30)
    got = flask("dbos", "workflow", "get", "order-1")
    assert got.returncode == 0, got.stderr
    assert '"status": "SUCCESS"' in got.stdout and '"authenticated_user": "ann"' in got.stdout
