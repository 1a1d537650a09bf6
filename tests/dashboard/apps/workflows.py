"""The workflows of the dashboard's test apps (admin server, Flask, Django)."""

from __future__ import annotations

from datetime import datetime

from dbos_core import DBOS, Queue

dash_jobs = Queue("dash_jobs", concurrency=10)


@DBOS.step()
def dash_pick(n: int) -> int:
    return n


@DBOS.step()
def dash_pack(n: int) -> int:
    return n * 2


@DBOS.step()
def dash_ship(n: int) -> str:
    return f"shipped {n}"


@DBOS.workflow()
def dash_job(n: int, wait_for_approval: bool) -> str:
    dash_pick(n)
    dash_pack(n)
    if wait_for_approval and DBOS.recv("approval", timeout_seconds=3600) != "approved":
        raise RuntimeError(f"job {n} was not approved")
    return dash_ship(n)


@DBOS.scheduled("0 3 * * *")
@DBOS.workflow()
def dash_nightly(scheduled: datetime, actual: datetime) -> None:
    pass
