"""The core sections of the README run as written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from dbos_core import DBOS
from tests.readme import readme_section


def _code(heading: str) -> str:
    return re.findall(r"```python\n(.*?)```", readme_section(heading), re.S)[0]


def test_first_workflow_example(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Runs as a script would, on its default SQLite file in the working directory.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DBOS_SYSTEM_DATABASE_URL", raising=False)
    DBOS.destroy()
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(_code("A first workflow"), "README-first-workflow", "exec"), namespace)
    assert capsys.readouterr().out.strip() == "charged"
    assert (tmp_path / "shop.sqlite").exists()


def test_queue_example(dbos: type[DBOS]) -> None:
    namespace: dict[str, Any] = {"__name__": "readme_queues"}
    exec(compile(_code("Queues, schedules"), "README-queues", "exec"), namespace)
    assert namespace["newsletter"](["a@x", "b@x"]) == ["sent to a@x", "sent to b@x"]
    handle = namespace["reindex"].debounce("user-7", 0.05, "c@x")
    assert handle.get_result(timeout=30) == "sent to c@x"
