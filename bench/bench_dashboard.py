"""The dashboard's pages on a system database of 1,000,000 workflows.

Usage:
    python bench/bench_dashboard.py postgres            # a fresh database on 127.0.0.1:5432
    python bench/bench_dashboard.py sqlite              # a fresh SQLite file (slower to load)
    python bench/bench_dashboard.py postgres --rows 200000

It bulk-loads the rows with one ``INSERT ... SELECT`` (PostgreSQL: ``generate_series``;
SQLite: a recursive CTE): 30 days of workflows, 20 names, three queues, a thousand
users, five executors, three application versions, mostly SUCCESS with some ERROR,
CANCELLED, PENDING and ENQUEUED, a few recovered. Then it launches DBOS on that
database and times whole pages through ``Dashboard.handle`` (queries and HTML), each
20 times: median and worst. In the same run it measures the floor, one single-row
``INSERT`` + ``COMMIT``, and the cost of the dashboard's indexes on a workflow start
(a single-row insert into the loaded table with and without them).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import sqlalchemy as sa

from dbos_core import DBOS
from dbos_core.dashboard import Dashboard, DashboardRequest
from dbos_core.runtime.global_state import get_runtime
from dbos_core.storage.schema import DASHBOARD_INDEXES

PG_SERVER = os.environ.get("DBOS_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432")
ROUNDS = 20
DAY_MS = 86_400_000

# Columns of one generated row, from its number ``i`` (SQL shared by both dialects,
# with ``{mod}`` and ``{div}`` spelled per dialect).
_ROW = """
    'wf-' || {pad} AS workflow_uuid,
    CASE WHEN i % 100 < 90 THEN 'SUCCESS' WHEN i % 100 < 95 THEN 'ERROR'
         WHEN i % 100 < 97 THEN 'CANCELLED'
         WHEN i > {n} - 20000 AND i % 100 < 99 THEN 'PENDING'
         WHEN i > {n} - 20000 THEN 'ENQUEUED' ELSE 'SUCCESS' END AS status,
    'workflow_' || (i % 20) AS name,
    CASE WHEN i % 7 = 0 THEN 'user' || (i % 1000) END AS authenticated_user,
    'executor-' || (i % 5) AS executor_id,
    'v' || (CASE WHEN i % 1000 = 0 THEN 0 WHEN i % 3 = 0 THEN 1 ELSE 2 END) AS application_version,
    {start} + i * {step} AS created_at,
    {start} + i * {step} + 40 + (i % 90) AS updated_at,
    CASE WHEN i % 997 = 0 THEN 2 ELSE 1 END AS recovery_attempts,
    CASE WHEN i % 10 < 3 THEN 'queue_' || (i % 3) END AS queue_name,
    CASE WHEN i % 10 < 3 THEN {start} + i * {step} + 5 + (i % 20) END AS started_at_epoch_ms,
    'gASVBQAAAAAAAABLAYWULg==' AS inputs,
    'gASVAgAAAAAAAABLKi4=' AS output
"""
_COLUMNS = (
    "workflow_uuid, status, name, authenticated_user, executor_id, application_version, "
    "created_at, updated_at, recovery_attempts, queue_name, started_at_epoch_ms, inputs, output"
)


def target(rows: int) -> str:
    """The workflow whose page is timed (it gets ten steps)."""
    return f"wf-{rows // 2:07d}"


def load(engine: sa.Engine, sqlite: bool, rows: int) -> float:
    now = int(time.time() * 1000)
    start = now - 30 * DAY_MS
    step = 30 * DAY_MS // rows
    table = "workflow_status" if sqlite else "dbos.workflow_status"
    started = time.perf_counter()
    if sqlite:
        pad = "substr('0000000' || i, -7, 7)"
        select = _ROW.format(pad=pad, n=rows, start=start, step=step)
        sql = (
            f"WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < {rows}) "
            f"INSERT INTO {table} ({_COLUMNS}) SELECT {select} FROM seq"
        )
    else:
        pad = "lpad(i::text, 7, '0')"
        select = _ROW.format(pad=pad, n=rows, start=start, step=step)
        sql = (
            f"INSERT INTO {table} ({_COLUMNS}) "
            f"SELECT {select} FROM generate_series(1::bigint, {rows}) AS s(i)"
        )
    steps_table = "operation_outputs" if sqlite else "dbos.operation_outputs"
    with engine.begin() as conn:
        conn.execute(sa.text(sql))
        # Ten steps for the workflow whose page is timed.
        for fid in range(1, 11):
            conn.exec_driver_sql(
                f"INSERT INTO {steps_table} (workflow_uuid, function_id, function_name, output, "
                f"started_at_epoch_ms, completed_at_epoch_ms) VALUES ('{target(rows)}', {fid}, "
                f"'step_{fid}', 'gASVAgAAAAAAAABLKi4=', {start + fid * 10}, {start + fid * 10 + 5})"
            )
        conn.exec_driver_sql("ANALYZE" if sqlite else f"ANALYZE {table}")
    return time.perf_counter() - started


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    fn()  # warm-up (plans, connections)
    samples = []
    for _ in range(ROUNDS):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples), max(samples)


def single_inserts(engine: sa.Engine, sqlite: bool, count: int = 200) -> float:
    """Median ms of one workflow-shaped INSERT + COMMIT into the loaded table."""
    table = "workflow_status" if sqlite else "dbos.workflow_status"
    stmt = sa.text(
        f"INSERT INTO {table} (workflow_uuid, status, name, executor_id, application_version, "
        "created_at, updated_at, recovery_attempts, inputs) VALUES "
        "(:id, 'PENDING', 'workflow_1', 'executor-0', 'v2', :t, :t, 1, 'gASVBQAAAAAAAABLAYWULg==')"
    )
    samples = []
    with engine.connect() as conn:
        for _ in range(count):
            t = time.perf_counter()
            with conn.begin():
                conn.execute(stmt, {"id": f"ins-{uuid.uuid4().hex}", "t": int(time.time() * 1000)})
            samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples)


def floor(engine: sa.Engine, sqlite: bool, count: int = 200) -> float:
    """Median ms of a single-row INSERT + COMMIT into a one-column table (the floor)."""
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS bench_floor (v TEXT)")
    samples = []
    with engine.connect() as conn:
        for i in range(count):
            t = time.perf_counter()
            with conn.begin():
                conn.execute(sa.text("INSERT INTO bench_floor (v) VALUES (:v)"), {"v": str(i)})
            samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("backend", choices=["postgres", "sqlite"])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    sqlite = args.backend == "sqlite"
    name = f"bench_dashboard_{uuid.uuid4().hex[:8]}"
    url = f"sqlite:///{tempfile.mkdtemp()}/{name}.sqlite" if sqlite else f"{PG_SERVER}/{name}"
    DBOS(config={"name": "bench-dashboard", "system_database_url": url, "log_level": "WARNING"})
    DBOS.launch()
    rt = get_runtime()
    engine = rt.sysdb.db.engine
    try:
        seconds = load(engine, sqlite, args.rows)
        print(f"loaded {args.rows:,} workflows in {seconds:.1f} s ({args.backend})")
        dashboard = Dashboard(rt, live=False)
        middle = 30 * DAY_MS // 2
        deep = f"{int(time.time() * 1000) - middle}~wf-9999999"

        def page(path: str, query: str = "") -> Callable[[], object]:
            def get() -> object:
                response = dashboard.handle(DashboardRequest("GET", path, "/d", query))
                assert response.status == 200, (path, query, response.status, response.body[:300])
                return response

            return get

        pages = [
            ("list, newest page", page("/workflows")),
            ("list, a page 15 days back (cursor)", page("/workflows", f"before={deep}")),
            ("status = ERROR", page("/workflows", "status=ERROR")),
            ("status = PENDING", page("/workflows", "status=PENDING")),
            ("name", page("/workflows", "name=workflow_7")),
            ("queue", page("/workflows", "queue=queue_1")),
            ("user", page("/workflows", "user=user42")),
            ("executor", page("/workflows", "executor=executor-3")),
            ("application version (rare: 0.1 %)", page("/workflows", "version=v0")),
            ("ID prefix", page("/workflows", "prefix=wf-04217")),
            ("last hour", page("/workflows", "window=1h")),
            (
                "status + name + 7 days",
                page("/workflows", "status=ERROR&name=workflow_3&window=7d"),
            ),
            ("one workflow (10 steps)", page(f"/workflows/{target(args.rows)}")),
            ("queues (last hour's plots)", page("/queues")),
            ("health", page("/health")),
            ("schedules", page("/schedules")),
        ]
        base = floor(engine, sqlite)
        print(f"\nfloor: one INSERT + COMMIT = {base:.3f} ms\n")
        print("| page | median | worst of 20 | median / floor |")
        print("| --- | --- | --- | --- |")
        for label, fn in pages:
            median, worst = timed(fn)
            print(f"| {label} | {median:.1f} ms | {worst:.1f} ms | {median / base:.0f}x |")
        # Alternate, so that the load of the machine weighs on both alike.
        with_ratios, without_ratios = [], []
        for _round in range(3):
            with_ratios.append(single_inserts(engine, sqlite) / floor(engine, sqlite))
        with engine.begin() as conn:
            for index in DASHBOARD_INDEXES:
                index.drop(conn, checkfirst=True)
        for _round in range(3):
            without_ratios.append(single_inserts(engine, sqlite) / floor(engine, sqlite))
        print(
            "\nworkflow-row INSERT + COMMIT into the loaded table, as multiples of the floor "
            f"measured right after: {statistics.median(with_ratios):.2f}x with the dashboard's "
            f"indexes, {statistics.median(without_ratios):.2f}x without"
        )
    finally:
        DBOS.destroy()
        if not sqlite:
            admin = sa.create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()


if __name__ == "__main__":
    main()
