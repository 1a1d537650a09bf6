"""Step overhead against the floor of one durable write, on SQLite and PostgreSQL.

The floor is one INSERT + COMMIT of a row shaped like a step checkpoint, through the
same engine (same durability settings: SQLite WAL with synchronous=FULL; PostgreSQL
defaults, synchronous_commit=on). A step should cost at most 1.5x that floor.

    python bench/step_overhead.py [--steps 2000] [--backend sqlite|postgres|both]
                                  [--telemetry off|metrics|tracing|both|all]

``--telemetry``: measure with Prometheus metrics on, with OpenTelemetry tracing on
(spans batched and exported over OTLP/HTTP to a sink in another process, which
answers 200 without decoding), with both, or each of these and off in turn.
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
from typing import Any

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


SINK = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def telemetry_config(mode: str, sink_port: int | None) -> dict[str, object]:
    config: dict[str, object] = {}
    if mode in ("metrics", "both"):
        config["enable_metrics"] = True
    if mode in ("tracing", "both"):
        config["enable_otlp"] = True
        config["otlp_traces_endpoints"] = [f"http://127.0.0.1:{sink_port}/v1/traces"]
    return config


_FLOOR_TABLE = None


def _floor_table() -> object:
    import sqlalchemy as sa

    global _FLOOR_TABLE
    if _FLOOR_TABLE is None:
        _FLOOR_TABLE = sa.Table(
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
    return _FLOOR_TABLE


def one_round(url: str, steps: int, mode: str, sink_port: int | None, tag: str) -> dict[str, float]:
    """Launch DBOS with ``mode``, time ``steps`` single-row commits and ``steps`` steps."""
    from dbos_core import DBOS

    DBOS(
        config={
            "name": "bench",
            "system_database_url": url,
            "log_level": "WARNING",
            **telemetry_config(mode, sink_port),  # type: ignore[typeddict-item]
        }
    )
    DBOS.launch()
    try:

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
        table: Any = _floor_table()
        table.create(engine, checkfirst=True)
        output = rt.serializer.serialize(12345)
        # The floor's statement is built once, as the step's is: both pay only execution.
        floor_insert = table.insert()
        many_steps(10)  # warm up caches and the pool

        # The floor: the same number of single-row durable inserts.
        start = time.perf_counter()
        for i in range(steps):
            now = int(time.time() * 1000)
            with engine.connect() as conn:
                conn.execute(
                    floor_insert,
                    {
                        "workflow_uuid": f"floor-{tag}",
                        "function_id": i,
                        "function_name": "tiny",
                        "output": output,
                        "started_at_epoch_ms": now,
                        "completed_at_epoch_ms": now,
                    },
                )
        floor = (time.perf_counter() - start) / steps

        # The workflow runs inline in this thread: thread_time is the steps' own CPU,
        # process_time adds the background threads (the span exporter).
        start, thread_cpu, cpu = time.perf_counter(), time.thread_time(), time.process_time()
        many_steps(steps)
        step = (time.perf_counter() - start) / steps
        telemetry = telemetry_cost(rt, steps * 5)
        return {
            "telemetry": telemetry,
            "step": step,
            "floor": floor,
            "ratio": step / floor,
            "thread_cpu": (time.thread_time() - thread_cpu) / steps,
            "cpu": (time.process_time() - cpu) / steps,
        }
    finally:
        DBOS.destroy()


def telemetry_cost(rt: Any, n: int) -> float:
    """CPU seconds per step spent in the step wrapper alone (span, metrics, context),
    measured on a step body that does nothing: stable under load, unlike wall time."""
    from dbos_core.runtime.context import WorkflowState
    from dbos_core.runtime.effects import run_sync

    state = WorkflowState(workflow_id="bench-telemetry", name="many_steps")

    def body() -> Any:
        return 1
        yield

    start = time.thread_time()
    for i in range(n):
        run_sync(rt.telemetry.step(state, i, "tiny", body()))
    return (time.thread_time() - start) / n


def run(
    backend: str, steps: int, rounds: int, modes: list[str], sink_port: int | None
) -> dict[str, dict[str, float]]:
    """Medians per mode. The modes take turns within each round (in a rotating order) on
    one database, so that changes in the machine's load hit all of them alike."""
    samples: dict[str, list[dict[str, float]]] = {mode: [] for mode in modes}
    with tempfile.TemporaryDirectory() as tmp:
        url = make_url(backend, Path(tmp))
        try:
            for r in range(rounds):
                for k in range(len(modes)):
                    mode = modes[(r + k) % len(modes)]
                    samples[mode].append(one_round(url, steps, mode, sink_port, f"{r}-{mode}"))
        finally:
            drop(url)
    return {
        mode: {key: statistics.median(s[key] for s in runs) for key in runs[0]}
        for mode, runs in samples.items()
    }


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
    parser.add_argument(
        "--telemetry", choices=["off", "metrics", "tracing", "both", "all"], default="off"
    )
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    modes = ["off", "metrics", "tracing", "both"] if args.telemetry == "all" else [args.telemetry]
    print(f"import dbos_core: {import_time_ms():.1f} ms (median of 5)")
    sink = None
    if any(m in ("tracing", "both") for m in modes):
        sink = subprocess.Popen([sys.executable, "-c", SINK], stdout=subprocess.PIPE, text=True)
    try:
        sink_port = int(sink.stdout.readline()) if sink is not None and sink.stdout else None
        for backend in backends:
            results = run(backend, args.steps, args.rounds, modes, sink_port)
            for mode, res in results.items():
                print(
                    f"{backend:9s} telemetry {mode:8s} step {res['step'] * 1000:.3f} ms   "
                    f"floor (INSERT+COMMIT) {res['floor'] * 1000:.3f} ms   "
                    f"ratio {res['ratio']:.2f}x   CPU/step {res['thread_cpu'] * 1e6:.0f} us "
                    f"(process {res['cpu'] * 1e6:.0f} us)   step wrapper alone "
                    f"{res['telemetry'] * 1e6:.1f} us",
                    flush=True,
                )
    finally:
        if sink is not None:
            sink.terminate()
            sink.wait(5)


if __name__ == "__main__":
    main()
