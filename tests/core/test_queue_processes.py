"""Several worker processes on one database: exactly-once, global limits, crash recovery.

Three worker processes (``queue_worker.py``) share one system database and one
queue (concurrency 6 across processes, 4 per process); 300 tasks are enqueued.
The tasks themselves record how many tasks run at each moment and every execution
of their step. One variant SIGKILLs a worker midway and restarts it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.conftest import BACKEND

WORKER = Path(__file__).with_name("queue_worker.py")
ROOT = Path(__file__).resolve().parents[2]
TASKS = 300
CONCURRENCY = 6
WORKER_CONCURRENCY = 4


def _engine(db_url: str) -> sa.Engine:
    return sa.create_engine(
        db_url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )


def _create_app_tables(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE mp_running (task INTEGER PRIMARY KEY, executor TEXT)")
        conn.exec_driver_sql(
            "CREATE TABLE mp_samples (task INTEGER, executor TEXT, running_now INTEGER, "
            "running_here INTEGER)"
        )
        conn.exec_driver_sql("CREATE TABLE mp_effects (task INTEGER, executor TEXT)")


def _start(db_url: str, executor: str, stop_file: Path, enqueue: int = 0) -> subprocess.Popen[str]:
    args = [sys.executable, str(WORKER), db_url, executor, str(stop_file)]
    if enqueue:
        args.append(str(enqueue))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _scalar(engine: sa.Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar()


def _wait_for(predicate: Any, timeout: float, procs: list[subprocess.Popen[str]]) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        for p in procs:
            if p.poll() is not None and p.returncode not in (0, -signal.SIGKILL):
                out = p.stdout.read() if p.stdout else ""
                pytest.fail(f"worker exited with {p.returncode}:\n{out}")
        if time.monotonic() > deadline:
            outputs = []
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
                outputs.append(p.stdout.read() if p.stdout else "")
            pytest.fail(
                f"timed out waiting for {getattr(predicate, '__name__', predicate)}; "
                "worker output:\n" + "\n---\n".join(o[-3000:] for o in outputs)
            )
        time.sleep(0.05)


def _finish(procs: list[subprocess.Popen[str]], stop_file: Path) -> None:
    stop_file.touch()
    for p in procs:
        if p.poll() is None:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _all_ready(stop_file: Path, procs: list[subprocess.Popen[str]]) -> None:
    """Wait until the three workers have launched, then let worker 0 enqueue."""
    workdir = stop_file.parent
    _wait_for(lambda: all((workdir / f"ready-w{i}").exists() for i in range(3)), 60, procs)
    (workdir / "go").touch()


def _successes(engine: sa.Engine) -> int:
    return int(
        _scalar(
            engine,
            "SELECT count(*) FROM workflow_status WHERE status = 'SUCCESS' "
            "AND queue_name = 'mp_queue'",
        )
    )


def _check_outcome(engine: sa.Engine) -> tuple[Counter[int], dict[str, int]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT workflow_uuid, status, executor_id FROM workflow_status WHERE queue_name = 'mp_queue'"
            )
        ).all()
        peak = conn.execute(sa.text("SELECT max(running_now) FROM mp_samples")).scalar()
        peak_here = conn.execute(sa.text("SELECT max(running_here) FROM mp_samples")).scalar()
        effects = Counter(r[0] for r in conn.execute(sa.text("SELECT task FROM mp_effects")))
        by_executor = dict(
            conn.execute(
                sa.text("SELECT executor, count(*) FROM mp_effects GROUP BY executor")
            ).all()
        )
        checkpoints = conn.execute(
            sa.text(
                "SELECT count(*), count(DISTINCT workflow_uuid) FROM operation_outputs "
                "WHERE workflow_uuid LIKE 'task-%'"
            )
        ).one()
        still_running = conn.execute(sa.text("SELECT count(*) FROM mp_running")).scalar()
    assert len(rows) == TASKS
    assert {r[1] for r in rows} == {"SUCCESS"}
    # One checkpoint of the step per task: the step completed exactly once for each.
    assert tuple(checkpoints) == (TASKS, TASKS)
    assert set(effects) == set(range(TASKS))
    # The global limit held across the three processes, as seen from inside the tasks.
    assert peak is not None and 1 < peak <= CONCURRENCY
    # ... and so did each process's own limit.
    assert peak_here is not None and peak_here <= WORKER_CONCURRENCY
    assert still_running == 0
    return effects, by_executor


@pytest.fixture()
def app_db(db_url: str) -> Any:
    engine = _engine(db_url)
    _create_app_tables(engine)
    yield engine
    engine.dispose()


def _monitor_engine(db_url: str) -> sa.Engine:
    """Reads the system tables (schema dbos on PostgreSQL) and the app tables."""
    if BACKEND == "postgres":
        return sa.create_engine(
            db_url.replace("postgresql://", "postgresql+psycopg://"),
            isolation_level="AUTOCOMMIT",
            connect_args={"options": "-c search_path=dbos,public"},
        )
    return _engine(db_url)


def _tables_ready(engine: sa.Engine) -> bool:
    try:
        _scalar(engine, "SELECT count(*) FROM workflow_status")
    except sa.exc.DBAPIError:
        return False
    return True


def test_three_workers_run_each_task_once_within_global_limit(
    db_url: str, app_db: sa.Engine, tmp_path: Path
) -> None:
    stop_file = tmp_path / "stop"
    procs = [
        _start(db_url, "w0", stop_file, enqueue=TASKS),
        _start(db_url, "w1", stop_file),
        _start(db_url, "w2", stop_file),
    ]
    monitor = _monitor_engine(db_url)
    try:
        _all_ready(stop_file, procs)
        _wait_for(lambda: _tables_ready(monitor) and _successes(monitor) == TASKS, 120, procs)
    finally:
        _finish(procs, stop_file)
    effects, by_executor = _check_outcome(monitor)
    # Nobody died: every step ran exactly once, and all three processes took work.
    assert set(effects.values()) == {1}
    assert set(by_executor) == {"w0", "w1", "w2"}
    monitor.dispose()


def test_sigkilled_worker_recovers_its_tasks_exactly_once(
    db_url: str, app_db: sa.Engine, tmp_path: Path
) -> None:
    stop_file = tmp_path / "stop"
    procs = [
        _start(db_url, "w0", stop_file, enqueue=TASKS),
        _start(db_url, "w1", stop_file),
        _start(db_url, "w2", stop_file),
    ]
    monitor = _monitor_engine(db_url)
    try:

        def w2_busy_midway() -> bool:
            if not _tables_ready(monitor) or _successes(monitor) < TASKS // 3:
                return False
            return bool(
                _scalar(
                    monitor,
                    "SELECT count(*) FROM workflow_status WHERE executor_id = 'w2' "
                    "AND status = 'PENDING'",
                )
            )

        _all_ready(stop_file, procs)
        orphaned: set[str] = set()
        for _attempt in range(100):
            _wait_for(w2_busy_midway, 60, procs)
            # Freeze w2, then look: what it holds now is exactly what its death orphans
            # (checking first and killing after could miss a task finished in between).
            procs[-1].send_signal(signal.SIGSTOP)
            with monitor.connect() as conn:
                orphaned = {
                    r[0]
                    for r in conn.execute(
                        sa.text(
                            "SELECT workflow_uuid FROM workflow_status "
                            "WHERE executor_id = 'w2' AND status = 'PENDING'"
                        )
                    )
                }
            if orphaned:
                procs[-1].send_signal(signal.SIGKILL)
                procs[-1].wait()
                break
            procs[-1].send_signal(signal.SIGCONT)  # between tasks: let it go on, try again
        assert orphaned
        # The survivors keep working but cannot finish: w2's claimed tasks hold their slots.
        # (A finish w2 sent just before the kill may still commit: hence >=, and the
        # orphans are read again once everything else is done.)
        _wait_for(lambda: _successes(monitor) >= TASKS - len(orphaned), 120, procs[:2])
        assert procs[2].poll() is not None
        with monitor.connect() as conn:
            still = {
                r[0]
                for r in conn.execute(
                    sa.text(
                        "SELECT workflow_uuid FROM workflow_status "
                        "WHERE queue_name = 'mp_queue' AND status <> 'SUCCESS'"
                    )
                )
            }
        # Everything unfinished is w2's: nobody else took its claimed tasks.
        assert still and still <= orphaned
        orphaned = still
        procs.append(_start(db_url, "w2", stop_file))  # the same executor, restarted
        _wait_for(lambda: _successes(monitor) == TASKS, 120, procs)
    finally:
        _finish(procs, stop_file)
    effects, _ = _check_outcome(monitor)
    rerun = {f"task-{task}" for task, n in effects.items() if n > 1}
    # Only a task that was mid-step when w2 died may have run its step twice.
    assert rerun <= orphaned
    assert max(effects.values()) <= 2
    assert len(orphaned) <= WORKER_CONCURRENCY
    with monitor.connect() as conn:
        finishers = dict(
            conn.execute(
                sa.text(
                    "SELECT workflow_uuid, executor_id FROM workflow_status WHERE queue_name = 'mp_queue'"
                )
            ).all()
        )
    # Launch-time recovery of the restarted w2 completed its own orphaned tasks.
    assert {finishers[w] for w in orphaned} == {"w2"}
    monitor.dispose()


def test_worker_concurrency_counts_recovered_tasks(
    db_url: str, dbos_config: Any, tmp_path: Path
) -> None:
    """A restarted worker recovers its claimed tasks and counts them against its slots."""
    import threading

    from dbos_core import DBOS, Queue

    child = subprocess.Popen(
        [sys.executable, str(WORKER.with_name("queue_crash_worker.py")), db_url, "6"],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    monitor = _monitor_engine(db_url)
    try:

        def two_claimed_of_six() -> bool:
            if not _tables_ready(monitor):
                return False
            with monitor.connect() as conn:
                counts = dict(
                    conn.execute(
                        sa.text(
                            "SELECT status, count(*) FROM workflow_status "
                            "WHERE queue_name = 'crash_q' GROUP BY status"
                        )
                    ).all()
                )
            return counts.get("PENDING") == 2 and counts.get("ENQUEUED") == 4

        _wait_for(two_claimed_of_six, 60, [child])
        child.send_signal(signal.SIGKILL)
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    with monitor.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT workflow_uuid, status FROM workflow_status WHERE queue_name = 'crash_q'"
            )
        ).all()
    monitor.dispose()
    claimed = {r[0] for r in rows if r[1] == "PENDING"}
    everything = [r[0] for r in rows]
    assert len(everything) == 6 and len(claimed) == 2

    lock = threading.Lock()
    state = {"running": 0, "peak": 0}
    ran: list[int] = []

    DBOS.destroy()
    Queue("crash_q", worker_concurrency=2)

    @DBOS.step(name="crash_step")
    def crash_step(i: int) -> int:
        with lock:
            state["running"] += 1
            state["peak"] = max(state["peak"], state["running"])
            ran.append(i)
        time.sleep(0.05)
        with lock:
            state["running"] -= 1
        return i

    @DBOS.workflow(name="crash_task")
    def crash_task(i: int) -> int:
        return crash_step(i)

    DBOS(config={**dbos_config, "executor_id": "crashy", "application_version": "cv1"})
    DBOS.launch()
    try:
        handles = [DBOS.retrieve_workflow(w) for w in claimed]
        results = sorted(DBOS.retrieve_workflow(w).get_result() for w in everything)
        assert results == list(range(6))
        assert all(h.get_status().status == "SUCCESS" for h in handles)
        # The two recovered tasks held both worker slots: never more than two at once.
        assert state["peak"] == 2
        assert sorted(ran) == list(range(6))
    finally:
        DBOS.destroy()


ENQUEUER = """
import sys
from dbos_core import DBOS, Queue, SetEnqueueOptions, SetWorkflowID

queue = Queue(sys.argv[2])

@DBOS.workflow(name="cross-process-task")
def task(x):
    return x

DBOS(config={"name": "enqueuer", "system_database_url": sys.argv[1], "executor_id": "enqueuer"})
DBOS.launch()
# Pinned to the worker's version: this process's own dispatcher leaves it alone.
with SetEnqueueOptions(app_version=sys.argv[3]), SetWorkflowID("from-another-process"):
    queue.enqueue(task, 42)
DBOS.destroy()
"""


def test_enqueue_in_another_process_wakes_this_dispatcher(
    dbos: Any, db_url: str, tmp_path: Path
) -> None:
    """On PostgreSQL the worker is woken by NOTIFY: its fallback poll here is 60 s."""
    from dbos_core import DBOS, Queue
    from dbos_core.runtime.dispatcher import queue_registry

    # Only this queue, so nothing else shortens the dispatcher's fallback poll.
    saved = dict(queue_registry._queues)
    queue_registry._queues.clear()
    try:
        _cross_process_enqueue(DBOS, Queue, db_url, tmp_path)
    finally:
        queue_registry._queues.update(saved)
        queue_registry.version += 1


def _cross_process_enqueue(DBOS: Any, Queue: Any, db_url: str, tmp_path: Path) -> None:
    queue = Queue("cross-process", polling_interval_sec=60)

    @DBOS.workflow(name="cross-process-task")
    def task(x: int) -> int:
        return x + 1

    # Let the dispatcher settle into its wait before the other process enqueues.
    assert queue.enqueue(task, 0).get_result() == 1
    script = tmp_path / "enqueuer.py"
    script.write_text(ENQUEUER)
    subprocess.run(
        [sys.executable, str(script), db_url, queue.name, str(DBOS.application_version)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
        timeout=60,
    )
    handle = DBOS.retrieve_workflow("from-another-process")
    assert handle.get_result(timeout=30) == 43
    assert handle.get_status().executor_id == DBOS.executor_id
