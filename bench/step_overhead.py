"""Step overhead against the floor of one durable write, on SQLite and PostgreSQL.

The floor is one INSERT + COMMIT of a row shaped like a step checkpoint, through the
same engine (same durability settings: SQLite WAL with synchronous=FULL; PostgreSQL
defaults, synchronous_commit=on). A step should cost at most 1.5x that floor.

    python bench/step_overhead.py [--steps 2000] [--backend sqlite|postgres|both]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PG_SERVER = "postgresql://postgres@127.0.0.1:5432"


def make_url(backend: str, tmp: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp / 'bench.sqlite'}"
    import psycopg

    name = f"dbos_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{PG_SERVER}/{name}"


def drop(url: str) -> None:
    if url.startswith("postgresql"):
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(backend: str, steps: int, rounds: int) -> dict[str, float]:
    import sqlalchemy as sa

    from dbos_core import DBOS

    with tempfile.TemporaryDirectory() as tmp:
        url = make_url(backend, Path(tmp))
        try:
            DBOS(config={"name": "bench", "system_database_url": url, "log_level": "WARNING"})
            DBOS.launch()

            @DBOS.step()
            def tiny(i: int) -> int:
                return i + 1

            @DBOS.workflow()
            def many_steps(n: int) -> int:
                total = 0
                for i in range(n):
                    total += tiny(i)
                return total

            rt = DBOS._current._runtime  # type: ignore[union-attr]
            engine = rt.sysdb.db.engine
            floor_table = sa.Table(
                "bench_floor",
                sa.MetaData(),
                sa.Column("workflow_uuid", sa.Text, nullable=False),
                sa.Column("function_id", sa.Integer, nullable=False),
                sa.Column("function_name", sa.Text, nullable=False),
                sa.Column("output", sa.Text),
                sa.Column("started_at_epoch_ms", sa.BigInteger),
                sa.Column("completed_at_epoch_ms", sa.BigInteger),
                sa.PrimaryKeyConstraint("workflow_uuid", "function_id"),
            )
            floor_table.create(engine)
            output = rt.serializer.serialize(12345)
            # The floor's statement is built once, as the step's is: both pay only execution.
            floor_insert = floor_table.insert()

            step_costs: list[float] = []
            floor_costs: list[float] = []
            many_steps(10)  # warm up caches and the pool
            for r in range(rounds):
                # The floor: the same number of single-row durable inserts.
                wid = f"floor-{r}"
                start = time.perf_counter()
                for i in range(steps):
                    now = int(time.time() * 1000)
                    with engine.connect() as conn:
                        conn.execute(
                            floor_insert,
                            {
                                "workflow_uuid": wid,
                                "function_id": i,
                                "function_name": "tiny",
                                "output": output,
                                "started_at_epoch_ms": now,
                                "completed_at_epoch_ms": now,
                            },
                        )
                floor_costs.append((time.perf_counter() - start) / steps)

                start = time.perf_counter()
                many_steps(steps)
                step_costs.append((time.perf_counter() - start) / steps)
            DBOS.destroy()
        finally:
            drop(url)
    step = statistics.median(step_costs)
    floor = statistics.median(floor_costs)
    return {"step_ms": step * 1000, "floor_ms": floor * 1000, "ratio": step / floor}


def import_time_ms() -> float:
    code = "import time; t=time.perf_counter(); import dbos_core; print(time.perf_counter()-t)"
    samples = []
    for _ in range(5):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
        )
        samples.append(float(out.stdout) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    print(f"import dbos_core: {import_time_ms():.1f} ms (median of 5)")
    for backend in backends:
        res = run(backend, args.steps, args.rounds)
        print(
            f"{backend:9s} step {res['step_ms']:.3f} ms   floor (INSERT+COMMIT) "
            f"{res['floor_ms']:.3f} ms   ratio {res['ratio']:.2f}x"
        )


if __name__ == "__main__":
    main()
