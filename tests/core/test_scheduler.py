"""Cron-scheduled workflows: firing, arguments, exactly-once IDs, clear errors."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dbos_core import DBOS
from dbos_core.error import DBOSException
from dbos_core.runtime.global_state import get_runtime
from dbos_core.runtime.scheduler import (
    DBOSScheduleError,
    _schedules,
    fire,
    scheduled_workflow_id,
    unregister_schedule,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def schedules() -> Iterator[list[str]]:
    """Names of schedules a test declares; they stop firing when the test ends."""
    names: list[str] = []
    yield names
    for name in names:
        unregister_schedule(name)


def test_scheduled_workflow_fires_every_second(dbos: type[DBOS], schedules: list[str]) -> None:
    runs: list[tuple[datetime, datetime, str | None]] = []
    two = threading.Event()

    @DBOS.scheduled("* * * * * *")
    @DBOS.workflow()
    def every_second(scheduled_time: datetime, actual_time: datetime) -> None:
        runs.append((scheduled_time, actual_time, DBOS.workflow_id))
        if len(runs) >= 2:
            two.set()

    schedules.append(every_second.__qualname__)
    assert two.wait(10)
    first, second = runs[0], runs[1]
    for scheduled, actual, workflow_id in (first, second):
        assert scheduled.microsecond == 0 and scheduled.tzinfo is not None
        assert actual >= scheduled
        assert workflow_id == scheduled_workflow_id(every_second.__qualname__, scheduled)
    assert (second[0] - first[0]).total_seconds() >= 1


def test_each_scheduled_time_runs_once(dbos: type[DBOS], schedules: list[str]) -> None:
    ran: list[datetime] = []

    @DBOS.scheduled("0 0 1 1 *")  # yearly: never fires during the test by itself
    @DBOS.workflow()
    def yearly(scheduled_time: datetime, actual_time: datetime) -> str:
        ran.append(scheduled_time)
        return scheduled_time.isoformat()

    schedules.append(yearly.__qualname__)
    rt = get_runtime()
    when = datetime(2030, 1, 1, tzinfo=UTC)
    schedule = _schedules[yearly.__qualname__]
    assert fire(rt, schedule, when) is True
    # A second process (or a second timer) firing the same time finds the workflow there.
    assert fire(rt, schedule, when) is False
    handle = DBOS.retrieve_workflow(scheduled_workflow_id(yearly.__qualname__, when))
    assert handle.get_result() == when.isoformat()
    assert ran == [when]


def test_bad_cron_fails_at_decoration() -> None:
    @DBOS.workflow()
    def some_workflow(scheduled_time: datetime, actual_time: datetime) -> None:
        pass

    for bad in ("not a cron", "* * *", "61 * * * *", "* * * * * * *", ""):
        with pytest.raises(DBOSScheduleError, match="crontab"):
            DBOS.scheduled(bad)(some_workflow)
    assert issubclass(DBOSScheduleError, DBOSException)


def test_schedule_needs_a_two_argument_workflow() -> None:
    def plain(scheduled_time: datetime, actual_time: datetime) -> None:
        pass

    with pytest.raises(DBOSScheduleError, match="workflow"):
        DBOS.scheduled("* * * * *")(plain)

    @DBOS.workflow()
    def one_arg(scheduled_time: datetime) -> None:
        pass

    with pytest.raises(DBOSScheduleError, match="two arguments"):
        DBOS.scheduled("* * * * *")(one_arg)


WORKER = """
import os, sys, threading
from dbos_core import DBOS
out = sys.argv[2]

@DBOS.scheduled("* * * * * *")
@DBOS.workflow(name="tick")
def tick(scheduled_time, actual_time):
    with open(out, "a") as f:
        f.write(f"{scheduled_time.isoformat()} {os.getpid()}\\n")

DBOS(config={"name": "sched", "system_database_url": sys.argv[1],
             "executor_id": f"e{os.getpid()}", "application_version": "s1",
             "notification_poll_interval": 0.05})
DBOS.launch()
threading.Event().wait(float(sys.argv[3]))
DBOS.destroy()
"""


def test_two_processes_run_each_time_once(db_url: str, tmp_path: Path) -> None:
    out = tmp_path / "ticks.txt"
    script = tmp_path / "sched_worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen([sys.executable, str(script), db_url, str(out), "3.5"], env=env)
        for _ in range(2)
    ]
    for p in procs:
        assert p.wait(timeout=60) == 0
    lines = out.read_text().split()
    times = lines[0::2]
    assert len(times) >= 2
    assert len(times) == len(set(times)), f"a scheduled time ran twice: {sorted(times)}"
