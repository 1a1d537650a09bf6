"""``@DBOS.kafka_consumer`` in one process against a mock Kafka cluster (real protocol)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from dbos_core import DBOS, KafkaMessage, kafka_workflow_id
from dbos_core.kafka import REJECTED_MESSAGE_WORKFLOW
from tests.core.crashutil import wait_for
from tests.kafka.mock_cluster import MockKafka


def all_committed(
    kafka: MockKafka, group: str, topic: str, partitions: int = 3
) -> Callable[[], bool]:
    """Every partition committed up to its end (an empty partition needs no commit)."""

    def check() -> bool:
        committed = [max(c, 0) for c in kafka.committed(group, topic, partitions)]
        return committed == kafka.end_offsets(topic, partitions)

    return check


def test_each_message_starts_its_workflow_with_the_message(
    consumers: list[Any], kafka: MockKafka, consumer_config: dict[str, Any], topic: str
) -> None:
    received: list[tuple[KafkaMessage, str | None]] = []
    lock = threading.Lock()

    @DBOS.kafka_consumer(consumer_config, [topic])
    @DBOS.workflow()
    def handle_order(msg: KafkaMessage) -> str:
        with lock:
            received.append((msg, DBOS.workflow_id))
        assert msg.value is not None
        return msg.value.decode().upper()

    consumers.append(handle_order)
    before = int(time.time() * 1000)
    for partition in range(3):
        kafka.produce(
            topic,
            [f"order-{partition}-{i}".encode() for i in range(3)],
            partition=partition,
            key=b"customer-7",
            headers=[("trace", b"abc"), ("source", b"web")],
        )
    wait_for(lambda: len(received) == 9, what="nine workflows")
    group = consumer_config["group.id"]
    by_place = {(m.partition, m.offset): (m, wid) for m, wid in received}
    assert sorted(by_place) == [(p, o) for p in range(3) for o in range(3)]
    for (partition, offset), (msg, workflow_id) in by_place.items():
        assert msg.topic == topic
        assert msg.value == f"order-{partition}-{offset}".encode()
        assert msg.key == b"customer-7"
        assert msg.headers == (("trace", b"abc"), ("source", b"web"))
        assert msg.header("source") == b"web" and msg.header("missing") is None
        assert msg.timestamp_type == "create_time"
        assert msg.timestamp is not None and before - 1000 <= msg.timestamp <= time.time() * 1000
        assert workflow_id == kafka_workflow_id(group, topic, partition, offset)
        handle = DBOS.retrieve_workflow(workflow_id)
        assert handle.get_result() == f"ORDER-{partition}-{offset}"
    wait_for(all_committed(kafka, group, topic), what="offsets committed")
    assert kafka.committed(group, topic, 3) == [3, 3, 3]


def test_async_workflow_consumer(
    consumers: list[Any], kafka: MockKafka, consumer_config: dict[str, Any], topic: str
) -> None:
    values: list[bytes | None] = []

    @DBOS.kafka_consumer(consumer_config, topic)
    @DBOS.workflow()
    async def handle_async(msg: KafkaMessage) -> int:
        await asyncio.sleep(0)
        values.append(msg.value)
        return msg.offset

    consumers.append(handle_async)
    kafka.produce(topic, [b"a", b"b", b"c"], partition=1)
    wait_for(lambda: len(values) == 3, what="three async workflows")
    assert values == [b"a", b"b", b"c"]
    group = consumer_config["group.id"]
    handle = DBOS.retrieve_workflow(kafka_workflow_id(group, topic, 1, 2))
    assert handle.get_result() == 2
    wait_for(all_committed(kafka, group, topic), what="offsets committed")


def test_redelivered_messages_start_no_second_workflow(
    consumers: list[Any],
    kafka: MockKafka,
    consumer_config: dict[str, Any],
    topic: str,
    relaunch: Callable[..., None],
) -> None:
    runs: list[tuple[int, int]] = []

    @DBOS.kafka_consumer(consumer_config, [topic])
    @DBOS.workflow()
    def count_once(msg: KafkaMessage) -> None:
        runs.append((msg.partition, msg.offset))

    consumers.append(count_once)
    kafka.produce(topic, [b"x"] * 12)
    group = consumer_config["group.id"]
    wait_for(lambda: len(runs) == 12, what="twelve workflows")
    wait_for(all_committed(kafka, group, topic), what="offsets committed")
    ends = kafka.end_offsets(topic, 3)

    # Seek the whole group back to the start: every message is delivered again.
    DBOS.destroy()
    kafka.rewind(group, topic, 3, 0)
    assert kafka.committed(group, topic, 3) == [0, 0, 0]
    relaunch()
    # The consumer read everything again (its commits moved back to the end) ...
    wait_for(all_committed(kafka, group, topic), what="offsets committed after the rewind")
    assert kafka.committed(group, topic, 3) == ends
    # ... and found each workflow already there: none ran a second time.
    assert sorted(runs) == sorted(set(runs)) and len(runs) == 12
    workflows = DBOS.list_workflows(name=count_once.__qualname__)
    assert len(workflows) == 12
    assert {w.status for w in workflows} == {"SUCCESS"}


def test_in_order_runs_each_partition_in_offset_order_and_partitions_concurrently(
    consumers: list[Any], kafka: MockKafka, consumer_config: dict[str, Any], topic: str
) -> None:
    per_partition = 12
    events: list[tuple[str, int, int]] = []
    lock = threading.Lock()
    running: dict[int, int] = {0: 0, 1: 0, 2: 0}
    overlap_within_partition: list[tuple[int, int]] = []
    # The first message of every partition waits for the other two: only concurrent
    # partitions get past it.
    all_partitions = threading.Barrier(3, timeout=20)

    @DBOS.kafka_consumer(consumer_config, [topic], in_order=True)
    @DBOS.workflow()
    def ordered(msg: KafkaMessage) -> None:
        with lock:
            running[msg.partition] += 1
            if running[msg.partition] > 1:
                overlap_within_partition.append((msg.partition, msg.offset))
            events.append(("start", msg.partition, msg.offset))
        if msg.offset == 0:
            all_partitions.wait()
        time.sleep(0.002 * (msg.offset % 3))  # uneven work, so a race would show
        with lock:
            running[msg.partition] -= 1
            events.append(("end", msg.partition, msg.offset))

    consumers.append(ordered)
    for partition in range(3):
        kafka.produce(topic, [str(i).encode() for i in range(per_partition)], partition=partition)
    wait_for(lambda: len(events) == 2 * 3 * per_partition, what="all ordered workflows")
    assert overlap_within_partition == []
    for partition in range(3):
        starts = [off for kind, p, off in events if kind == "start" and p == partition]
        assert starts == list(range(per_partition))
    wait_for(all_committed(kafka, consumer_config["group.id"], topic), what="offsets committed")
    statuses = DBOS.list_workflows(name=ordered.__qualname__)
    assert len(statuses) == 3 * per_partition
    assert {s.queue_name for s in statuses} == {f"_dbos_kafka:{ordered.__qualname__}"}


def test_poison_messages_are_skipped_and_recorded(
    consumers: list[Any], kafka: MockKafka, consumer_config: dict[str, Any], topic: str
) -> None:
    import json

    totals: list[int] = []

    @DBOS.kafka_consumer(consumer_config, [topic], in_order=True, max_message_bytes=64)
    @DBOS.workflow()
    def add_amount(msg: KafkaMessage) -> int:
        amount = int(json.loads(msg.value or b"")["amount"])
        totals.append(amount)
        return amount

    consumers.append(add_amount)
    kafka.produce(
        topic,
        [
            b'{"amount": 1}',
            b"\xff\xfe not json",  # the workflow cannot decode it: its workflow fails
            b'{"amount": 2, "padding": "' + b"x" * 100 + b'"}',  # too large: skipped
            b'{"amount": 3}',
        ],
        partition=0,
    )
    group = consumer_config["group.id"]
    wait_for(lambda: totals == [1, 3], what="the good messages")
    wait_for(all_committed(kafka, group, topic), what="offsets committed past the poison")
    assert kafka.committed(group, topic, 3)[0] == 4

    undecodable = DBOS.retrieve_workflow(kafka_workflow_id(group, topic, 0, 1))
    wait_for(lambda: undecodable.get_status().status == "ERROR", what="the failed workflow")
    status = undecodable.get_status()
    assert status.name == add_amount.__qualname__
    assert "JSONDecodeError" in type(status.error).__name__ or "decode" in str(status.error)

    too_large = DBOS.retrieve_workflow(kafka_workflow_id(group, topic, 0, 2))
    wait_for(lambda: too_large.get_status().status == "ERROR", what="the skipped record")
    record = too_large.get_status()
    assert record.name == REJECTED_MESSAGE_WORKFLOW
    assert "exceeds max_message_bytes=64" in str(record.error)
    assert record.input is not None
    details = record.input["args"][0]
    assert (details["topic"], details["partition"], details["offset"]) == (topic, 0, 2)
    assert details["workflow"] == add_amount.__qualname__


def test_max_concurrency_bounds_running_workflows(
    consumers: list[Any], kafka: MockKafka, consumer_config: dict[str, Any], topic: str
) -> None:
    gate = threading.Event()
    lock = threading.Lock()
    running = 0
    most = 0
    finished: list[int] = []

    @DBOS.kafka_consumer(consumer_config, [topic], max_concurrency=2)
    @DBOS.workflow()
    def slow(msg: KafkaMessage) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        gate.wait(30)
        with lock:
            running -= 1
            finished.append(msg.offset)

    consumers.append(slow)
    kafka.produce(topic, [b"x"] * 8, partition=2)
    group = consumer_config["group.id"]
    wait_for(lambda: running == 2, what="two running workflows")
    # Both slots are taken: the consumer commits what it started and holds the rest.
    wait_for(
        lambda: kafka.committed(group, topic, 3)[2] == 2, what="the first two offsets committed"
    )
    assert len(DBOS.list_workflows(name=slow.__qualname__)) == 2
    gate.set()
    wait_for(lambda: len(finished) == 8, what="all eight workflows")
    assert most == 2
    wait_for(all_committed(kafka, group, topic), what="offsets committed")
