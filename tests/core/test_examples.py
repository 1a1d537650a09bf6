"""Docs that run: the README's demo and the seeds' quickstart."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BACKEND
from tests.core.crashutil import ROOT

QUICKSTART = """
import os
import time
from dbos_core import DBOS
dbos_system_database_url = os.environ.get('DBOS_SYSTEM_DATABASE_URL', 'sqlite:///dbos_system.db')
dbos_instance = DBOS(system_database_url=dbos_system_database_url)
@dbos_instance.step()
def greet_step(name: str) -> str:
    print(f"Executing greet_step for {name}...")
    time.sleep(0.01)
    return f"Hello, {name}!"
@dbos_instance.workflow()
def greeting_workflow(person_name: str) -> str:
    result = greet_step(person_name)
    return result
if __name__ == "__main__":
    try:
        dbos_instance.launch()
        workflow_handle = greeting_workflow.start(person_name="World")
        final_result = workflow_handle.get_result()
        print(f"Workflow 'greeting_workflow' completed with result: {final_result}")
    except Exception as e:
        print(f"An error occurred: {e}")
    finally:
        dbos_instance.destroy()
        print("DBOS application shut down.")
"""


@pytest.mark.skipif(BACKEND != "sqlite", reason="the demo runs on the embedded SQLite default")
def test_durability_demo_resumes_after_sigkill(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "example_projects/durability_demo/demo.py")],
        env={**os.environ, "DEMO_DIR": str(tmp_path), "DEMO_STEP_SECONDS": "0.2"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Durability demo succeeded." in out.stdout
    ledger = (tmp_path / "side_effects.log").read_text().splitlines()
    assert [line.split(" ran")[0] for line in ledger] == ["step 1", "step 2", "step 3", "step 4"]


def test_seed_quickstart_runs_as_written(tmp_path: Path, db_url: str) -> None:
    script = tmp_path / "quickstart.py"
    script.write_text(QUICKSTART)
    out = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "DBOS_SYSTEM_DATABASE_URL": db_url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "completed with result: Hello, World!" in out.stdout
    assert "An error occurred" not in out.stdout
