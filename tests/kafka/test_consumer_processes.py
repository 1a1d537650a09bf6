"""Consumer processes killed with SIGKILL, restarted, and sharing a group: exactly once.

The mock Kafka cluster lives in its own helper process; the consumers are real
processes (``tests/kafka/consumer_app.py``) on a shared system database, and each
message's workflow records one row in the ``kafka_effects`` table of an application
database, in a transaction that commits with the workflow's checkpoint.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dbos_core import DBOS, DBOSClient, kafka_workflow_id
from tests.conftest import make_database_url
from tests.core.crashutil import ROOT, kill9, wait_for
from tests.kafka.effects import effects
from tests.kafka.mock_cluster import MockKafka

PARTITIONS = 3


class Consumers:
    """Starts consumer processes on one system database, group and topic."""

    def __init__(self, kafka: MockKafka, sys_url: str, app_url: str, tmp_path: Path) -> None:
        self.kafka = kafka
        self.sys_url = sys_url
        self.app_url = app_url
        self.tmp_path = tmp_path
        self.topic = f"numbers-{uuid.uuid4().hex[:8]}"
        self.group = f"counters-{uuid.uuid4().hex[:8]}"
        self.procs: list[subprocess.Popen[bytes]] = []
        kafka.create_topic(self.topic, PARTITIONS)
        self.engine = sa.create_engine(app_url)
        # Created here, once: two processes starting together would race to create it.
        effects.metadata.create_all(self.engine)

    def start(self, *, in_order: bool = False) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "KAFKA_BOOTSTRAP": self.kafka.bootstrap,
            "KAFKA_GROUP": self.group,
            "KAFKA_TOPIC": self.topic,
            "KAFKA_IN_ORDER": "1" if in_order else "0",
            "DBOS_DATABASE_URL": self.sys_url,
            "APP_DATABASE_URL": self.app_url,
        }
        log = open(self.tmp_path / f"consumer-{len(self.procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.kafka.consumer_app"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.procs.append(proc)
        return proc

    def effects(self) -> list[Any]:
        with self.engine.connect() as conn:
            query = (
                'SELECT "partition", "offset", number, workflow_id, pid, id '
                "FROM kafka_effects ORDER BY id"
            )
            return list(conn.execute(sa.text(query)))

    def produce_slowly(self, count: int, per_chunk: int, pause: float) -> threading.Thread:
        """Produce "0".."count-1" round-robin over the partitions, in a stream."""

        def run() -> None:
            for start in range(0, count, per_chunk):
                numbers = range(start, min(count, start + per_chunk))
                self.kafka.produce_to_partitions(
                    self.topic, [(n % PARTITIONS, str(n).encode()) for n in numbers]
                )
                time.sleep(pause)

        thread = threading.Thread(target=run, name="producer", daemon=True)
        thread.start()
        return thread

    def all_finished(self, count: int) -> bool:
        """Every message's workflow stored its outcome (its effect alone is not enough:
        a workflow stopped between its transaction and its end stays PENDING)."""
        with DBOSClient(self.sys_url) as client:
            workflows = client.list_workflows(name="consume_number")
        return len(workflows) == count and {w.status for w in workflows} == {"SUCCESS"}

    def all_committed(self) -> bool:
        committed = self.kafka.committed(self.group, self.topic, PARTITIONS)
        return committed == self.kafka.end_offsets(self.topic, PARTITIONS)

    def logs(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.tmp_path.glob("consumer-*.log")))

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        self.engine.dispose()


@pytest.fixture()
def consumers(kafka: MockKafka, db_url: str, tmp_path: Path) -> Iterator[Consumers]:
    DBOS.destroy()
    group = Consumers(kafka, db_url, make_database_url(tmp_path, "app"), tmp_path)
    try:
        yield group
    finally:
        group.stop_all()


def assert_exactly_once(group: Consumers, count: int) -> list[Any]:
    rows = group.effects()
    places = [(r[0], r[1]) for r in rows]
    assert len(places) == len(set(places)), "a message's workflow recorded its effect twice"
    assert sorted(r[2] for r in rows) == list(range(count))
    for partition, offset, number, workflow_id, _pid, _id in rows:
        assert number % PARTITIONS == partition
        assert workflow_id == kafka_workflow_id(group.group, group.topic, partition, offset)
    with DBOSClient(group.sys_url) as client:
        workflows = client.list_workflows(name="consume_number")
    assert len(workflows) == count
    assert {w.status for w in workflows} == {"SUCCESS"}
    return rows


def test_consumer_killed_twice_mid_stream_runs_each_workflow_once(consumers: Consumers) -> None:
    total = 500
    producer = consumers.produce_slowly(total, per_chunk=25, pause=0.25)
    first = consumers.start()
    wait_for(lambda: len(consumers.effects()) >= 100, timeout=60, what="100 effects")
    kill9(first)
    killed_at = len(consumers.effects())
    second = consumers.start()
    wait_for(
        lambda: len(consumers.effects()) >= killed_at + 100, timeout=60, what="100 more effects"
    )
    kill9(second)
    third = consumers.start()
    producer.join(60)
    assert not producer.is_alive()
    wait_for(lambda: consumers.all_finished(total), timeout=60, what="all workflows")
    wait_for(consumers.all_committed, timeout=30, what="all offsets committed")
    third.send_signal(signal.SIGTERM)
    assert third.wait(30) == 0, consumers.logs()

    rows = assert_exactly_once(consumers, total)
    assert len({r[4] for r in rows}) == 3  # each of the three processes did part of it
    assert consumers.all_committed()


def test_group_members_share_partitions_and_hand_them_over_in_order(
    consumers: Consumers,
) -> None:
    # In order, each partition's workflows run one after the other (a claim, the
    # transaction, the end: several commits each), so this test keeps the stream short.
    total = 120
    producer = consumers.produce_slowly(total, per_chunk=6, pause=0.15)
    leaving = consumers.start(in_order=True)
    staying = consumers.start(in_order=True)
    wait_for(lambda: len(consumers.effects()) >= 30, timeout=60, what="30 effects")
    # A clean stop: the leaving process commits, leaves the group, and the other
    # process is assigned its partitions.
    leaving.send_signal(signal.SIGTERM)
    assert leaving.wait(30) == 0, consumers.logs()
    producer.join(60)
    wait_for(lambda: consumers.all_finished(total), timeout=60, what="all workflows")
    wait_for(consumers.all_committed, timeout=30, what="all offsets committed")
    staying.send_signal(signal.SIGTERM)
    assert staying.wait(30) == 0, consumers.logs()

    rows = assert_exactly_once(consumers, total)
    for partition in range(PARTITIONS):
        offsets = [r[1] for r in rows if r[0] == partition]
        assert offsets == sorted(offsets), f"partition {partition} ran out of order"
