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


def run(
    backend: str, steps: int, rounds: int, mode: str = "off", sink_port: int | None = None
) -> dict[str, float]:
    import sqlalchemy as sa

    from dbos_core import DBOS

    with tempfile.TemporaryDirectory() as tmp:
        url = make_url(backend, Path(tmp))
        try:
            DBOS(
                config={
                    "name": "bench",
                    "system_database_url": url,
                    "log_level": "WARNING",
                    **telemetry_config(mode, sink_port),  # type: ignore[typeddict-item]
                }
            )
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
            # CPU time of the whole process (exporter threads included) per step: what
            # telemetry adds, less blurred by other load on the machine than wall time.
            step_cpu: list[float] = []
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

                start, cpu = time.perf_counter(), time.process_time()
                many_steps(steps)
                step_costs.append((time.perf_counter() - start) / steps)
                step_cpu.append((time.process_time() - cpu) / steps)
            DBOS.destroy()
        finally:
            drop(url)
    step = statistics.median(step_costs)
    floor = statistics.median(floor_costs)
    return {
        "step_ms": step * 1000,
        "floor_ms": floor * 1000,
        "ratio": step / floor,
        "cpu_us": statistics.median(step_cpu) * 1e6,
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
            for mode in modes:
                res = run(backend, args.steps, args.rounds, mode, sink_port)
                print(
                    f"{backend:9s} telemetry {mode:8s} step {res['step_ms']:.3f} ms   "
                    f"floor (INSERT+COMMIT) {res['floor_ms']:.3f} ms   ratio {res['ratio']:.2f}x   "
                    f"CPU {res['cpu_us']:.0f} us/step",
                    flush=True,
                )
    finally:
        if sink is not None:
            sink.terminate()
            sink.wait(5)


if __name__ == "__main__":
    main()
