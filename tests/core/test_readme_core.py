"""The core sections of the README run as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from dbos_core import DBOS
from tests.core.crashutil import ROOT
from tests.readme import readme_section


def _code(heading: str) -> str:
    return re.findall(r"```python\n(.*?)```", readme_section(heading), re.S)[0]


def test_first_workflow_example(tmp_path: Path) -> None:
    # A script, run as one: on its default SQLite file in its working directory.
    (tmp_path / "app.py").write_text(_code("A first workflow"))
    env = {k: v for k, v in os.environ.items() if k != "DBOS_SYSTEM_DATABASE_URL"}
    out = subprocess.run(
        [sys.executable, "app.py"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "charged"
    assert (tmp_path / "shop.sqlite").exists()


def test_queue_example(dbos: type[DBOS]) -> None:
    namespace: dict[str, Any] = {"__name__": "readme_queues"}
    exec(compile(_code("Queues, schedules"), "README-queues", "exec"), namespace)
    assert namespace["newsletter"](["a@x", "b@x"]) == ["sent to a@x", "sent to b@x"]
    handle = namespace["reindex"].debounce("user-7", 0.05, "c@x")
    assert handle.get_result(timeout=30) == "sent to c@x"


def test_messaging_example(dbos: type[DBOS]) -> None:
    namespace: dict[str, Any] = {"__name__": "readme_messaging"}
    exec(compile(_code("Messages, events"), "README-messaging", "exec"), namespace)
    handle = DBOS.start_workflow(namespace["await_payment"], "o-1")
    assert DBOS.get_event(handle.workflow_id, "status", timeout_seconds=30) == "awaiting payment"
    namespace["pay"](handle.workflow_id)
    assert handle.get_result(timeout=60) == "done"
    assert list(DBOS.read_stream(handle.workflow_id, "progress")) == ["payment page sent"]
    assert DBOS.get_all_events(handle.workflow_id) == {"status": "paid"}


def test_safe_edges_example(dbos: type[DBOS]) -> None:
    namespace: dict[str, Any] = {"__name__": "readme_safe_edges"}
    exec(compile(_code("Safe edges"), "README-safe-edges", "exec"), namespace)
    assert namespace["who_gets_what"]() == [
        "opera for ann",
        "opera for ann",
        "WORKFLOW_ID_CONFLICT",
        "INVALID_ID",
    ]
