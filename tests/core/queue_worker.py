"""A queue worker process for the multi-process tests (run with subprocess).

Usage: python queue_worker.py DB_URL EXECUTOR_ID STOP_FILE [ENQUEUE_COUNT]

Every task records, from inside its execution, how many tasks were running at
that moment (a table of running task IDs, written under a table lock) and each
execution of its step (a row per execution), so the test can check the global
concurrency limit and exactly-once completion from the outside.
"""

from __future__ import annotations

import os
import sys
import time

import sqlalchemy as sa

from dbos_core import DBOS, Queue, SetWorkflowID

CONCURRENCY = 6
WORKER_CONCURRENCY = 4

db_url, executor_id, stop_file = sys.argv[1], sys.argv[2], sys.argv[3]
enqueue_count = int(sys.argv[4]) if len(sys.argv) > 4 else 0
is_sqlite = db_url.startswith("sqlite")

app_engine = sa.create_engine(
    db_url.replace("postgresql://", "postgresql+psycopg://"),
    isolation_level="AUTOCOMMIT",
    connect_args={"timeout": 30} if is_sqlite else {},
)
meta = sa.MetaData()
running = sa.Table(
    "mp_running",
    meta,
    sa.Column("task", sa.Integer, primary_key=True),
    sa.Column("executor", sa.Text),
)
samples = sa.Table(
    "mp_samples",
    meta,
    sa.Column("task", sa.Integer),
    sa.Column("executor", sa.Text),
    sa.Column("running_now", sa.Integer),
    sa.Column("running_here", sa.Integer),
)
effects = sa.Table(
    "mp_effects", meta, sa.Column("task", sa.Integer), sa.Column("executor", sa.Text)
)

queue = Queue("mp_queue", concurrency=CONCURRENCY, worker_concurrency=WORKER_CONCURRENCY)


def locked() -> sa.Connection:
    conn = app_engine.connect()
    if is_sqlite:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")
        conn.exec_driver_sql("LOCK TABLE mp_running IN EXCLUSIVE MODE")
    return conn


def enter(task: int) -> None:
    """Join the set of running tasks (idempotent, for re-runs after a crash) and sample it."""
    with locked() as conn:
        exists = conn.execute(sa.select(running.c.task).where(running.c.task == task)).first()
        if exists is None:
            conn.execute(running.insert().values(task=task, executor=executor_id))
        count = conn.execute(sa.select(sa.func.count()).select_from(running)).scalar_one()
        here = conn.execute(
            sa.select(sa.func.count()).where(running.c.executor == executor_id)
        ).scalar_one()
        conn.execute(
            samples.insert().values(
                task=task, executor=executor_id, running_now=count, running_here=here
            )
        )
        conn.exec_driver_sql("COMMIT")


def leave(task: int) -> None:
    with locked() as conn:
        conn.execute(running.delete().where(running.c.task == task))
        conn.exec_driver_sql("COMMIT")


@DBOS.step()
def work(task: int) -> int:
    with app_engine.connect() as conn:
        conn.execute(effects.insert().values(task=task, executor=executor_id))
    time.sleep(0.02)
    return task


@DBOS.workflow()
def mp_task(task: int) -> int:
    enter(task)
    result = work(task)
    leave(task)
    return result


def main() -> None:
    DBOS(
        config={
            "name": "mp-test",
            "system_database_url": db_url,
            "executor_id": executor_id,
            "application_version": "mp-v1",
            "notification_poll_interval": 0.05,
            "sys_db_pool_size": 8,
        }
    )
    DBOS.launch()
    # Tell the test we are up, then wait for its go: every worker is dispatching
    # before the first task is enqueued.
    workdir = os.path.dirname(stop_file)
    open(os.path.join(workdir, f"ready-{executor_id}"), "w").close()
    while enqueue_count and not os.path.exists(os.path.join(workdir, "go")):
        time.sleep(0.01)
    for i in range(enqueue_count):
        with SetWorkflowID(f"task-{i}"):
            queue.enqueue(mp_task, i)
    print(f"ready {executor_id}", flush=True)
    while not os.path.exists(stop_file):
        time.sleep(0.05)
    DBOS.destroy()


if __name__ == "__main__":
    main()
