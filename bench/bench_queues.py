"""Queue benchmarks: enqueue->result latency on an idle queue, and throughput.

Usage:
    python bench/bench_queues.py sqlite           # a fresh SQLite file in a temp dir
    python bench/bench_queues.py postgres         # a fresh database on 127.0.0.1:5432
    python bench/bench_queues.py <database-url>

Latency: one trivial workflow at a time is enqueued and its result awaited
(N_LATENCY times, after a warm-up), so the queue is idle at every enqueue.
Throughput: 2,000 trivial workflows are enqueued on a queue with
worker_concurrency=10, and the clock stops when the last result is read.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dbos_core import DBOS, Queue

N_LATENCY = 500
N_THROUGHPUT = 2000
PG_SERVER = os.environ.get("DBOS_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432")


def database_url(arg: str) -> tuple[str, str | None]:
    if arg == "sqlite":
        return f"sqlite:///{tempfile.mkdtemp()}/bench_queues.sqlite", None
    if arg == "postgres":
        name = f"bench_queues_{uuid.uuid4().hex[:8]}"
        return f"{PG_SERVER}/{name}", name
    return arg, None


latency_queue = Queue("bench_latency")
throughput_queue = Queue("bench_throughput", worker_concurrency=10)


@DBOS.workflow()
def trivial(x: int) -> int:
    return x


def percentile(sorted_values: list[float], p: float) -> float:
    index = min(len(sorted_values) - 1, round(p / 100 * (len(sorted_values) - 1)))
    return sorted_values[index]


def main() -> None:
    url, created = database_url(sys.argv[1] if len(sys.argv) > 1 else "sqlite")
    DBOS(config={"name": "bench-queues", "system_database_url": url, "log_level": "WARNING"})
    DBOS.launch()
    try:
        for i in range(50):  # warm-up: connections, code paths
            latency_queue.enqueue(trivial, i).get_result()
        samples = []
        for i in range(N_LATENCY):
            start = time.perf_counter()
            latency_queue.enqueue(trivial, i).get_result()
            samples.append((time.perf_counter() - start) * 1000)
        samples.sort()
        print(
            f"latency  n={N_LATENCY}  p50={percentile(samples, 50):.2f} ms  "
            f"p99={percentile(samples, 99):.2f} ms  mean={statistics.mean(samples):.2f} ms"
        )

        start = time.perf_counter()
        handles = [throughput_queue.enqueue(trivial, i) for i in range(N_THROUGHPUT)]
        enqueued = time.perf_counter() - start
        for h in handles:
            h.get_result()
        elapsed = time.perf_counter() - start
        print(
            f"throughput  n={N_THROUGHPUT}  worker_concurrency=10  total={elapsed:.2f} s  "
            f"{N_THROUGHPUT / elapsed:.0f} workflows/s  (enqueue phase {enqueued:.2f} s)"
        )
    finally:
        DBOS.destroy()
        if created is not None:
            import psycopg

            with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{created}" WITH (FORCE)')


if __name__ == "__main__":
    main()
