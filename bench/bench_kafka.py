"""Kafka consumer throughput: messages per second into durably started workflows.

Usage (from the repository root):
    python bench/bench_kafka.py postgres      # a fresh database on 127.0.0.1:5432
    python bench/bench_kafka.py sqlite        # a fresh SQLite file in a temp dir
    python bench/bench_kafka.py postgres --messages 10000 --in-order
    python bench/bench_kafka.py postgres --max-concurrency 1000

A mock Kafka cluster (librdkafka's, real protocol, in a helper process) holds a
topic of 3 partitions filled beforehand with N small messages. DBOS launches (on system tables created beforehand) with one
``@DBOS.kafka_consumer`` on it; the clock runs from launch until the group's committed
offsets reach the end of every partition. An offset is committed only after its
message's workflow row exists, so this is the rate at which messages become durably
started (or, with --in-order, enqueued) workflows. The workflows are trivial and run
meanwhile in the same process, as they would in production.

In the same run the floor is measured on the same database: N single-row INSERT +
COMMITs, one after the other, of a row shaped like a workflow's (statement built once).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import sqlalchemy as sa

from dbos_core import DBOS, DBOSConfig, KafkaMessage
from tests.kafka.mock_cluster import mock_kafka

PG_SERVER = os.environ.get("DBOS_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432")
PARTITIONS = 3


def database_url(arg: str) -> tuple[str, str | None]:
    if arg == "sqlite":
        return f"sqlite:///{tempfile.mkdtemp()}/bench_kafka.sqlite", None
    if arg == "postgres":
        name = f"bench_kafka_{uuid.uuid4().hex[:8]}"
        return f"{PG_SERVER}/{name}", name
    return arg, None


def floor_per_insert(url: str, count: int) -> float:
    """Seconds per durable single-row INSERT + COMMIT on the same database."""
    engine = sa.create_engine(url)
    table = sa.Table(
        "bench_floor",
        sa.MetaData(),
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("status", sa.Text),
        sa.Column("name", sa.Text),
        sa.Column("inputs", sa.Text),
        sa.Column("created_at", sa.BigInteger),
    )
    table.create(engine)
    insert = table.insert()
    inputs = "x" * 200
    try:
        with engine.connect() as conn:
            start = time.perf_counter()
            for i in range(count):
                conn.execute(
                    insert,
                    {
                        "id": f"floor-{i}",
                        "status": "PENDING",
                        "name": "n",
                        "inputs": inputs,
                        "created_at": i,
                    },
                )
                conn.commit()
            return (time.perf_counter() - start) / count
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("backend", nargs="?", default="postgres")
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--in-order", action="store_true")
    parser.add_argument("--max-concurrency", type=int, default=None)
    args = parser.parse_args()
    url, created = database_url(args.backend)
    n = args.messages
    with mock_kafka() as kafka:
        topic = f"bench-{uuid.uuid4().hex[:6]}"
        group = f"bench-{uuid.uuid4().hex[:6]}"
        kafka.create_topic(topic, PARTITIONS)
        kafka.produce_to_partitions(topic, [(i % PARTITIONS, str(i).encode()) for i in range(n)])

        # Create the system tables first, so that the clock does not include migrations.
        settings: DBOSConfig = {
            "name": "bench-kafka",
            "system_database_url": url,
            "log_level": "WARNING",
        }
        DBOS(config=settings)
        DBOS.launch()
        DBOS.destroy()

        @DBOS.kafka_consumer(
            {
                "bootstrap.servers": kafka.bootstrap,
                "group.id": group,
                "auto.offset.reset": "earliest",
            },
            [topic],
            in_order=args.in_order,
            max_concurrency=args.max_concurrency,
        )
        @DBOS.workflow()
        def bench_message(msg: KafkaMessage) -> int:
            return msg.offset

        DBOS(config=settings)
        try:
            start = time.perf_counter()
            DBOS.launch()
            ends = kafka.end_offsets(topic, PARTITIONS)
            while kafka.committed(group, topic, PARTITIONS) != ends:
                time.sleep(0.05)
            elapsed = time.perf_counter() - start
            DBOS.destroy()
            floor = floor_per_insert(url, 1000)
        finally:
            DBOS.destroy()
            if created is not None:
                import psycopg

                with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{created}" WITH (FORCE)')
    mode = "in_order (enqueued)" if args.in_order else "started"
    if args.max_concurrency is not None:
        mode += f", max_concurrency={args.max_concurrency}"
    per_message = elapsed / n
    print(
        f"{args.backend}  {n} messages, 3 partitions, {mode}: {elapsed:.2f} s  "
        f"{n / elapsed:.0f} messages/s  ({per_message * 1000:.3f} ms each; floor INSERT+COMMIT "
        f"{floor * 1000:.3f} ms, ratio {per_message / floor:.2f}x)"
    )


if __name__ == "__main__":
    main()
