"""A Kafka cluster for tests: librdkafka's mock brokers, owned by a helper process.

The mock cluster speaks the real Kafka protocol on 127.0.0.1 (consumer groups,
offset commits, fetches) and lives as long as the process that created it, so it
runs here, apart from the consumer processes that tests SIGKILL and restart.
``python -m tests.kafka.mock_cluster`` prints ``ready <bootstrap>`` and then obeys
one command per line on stdin, answering ``ok`` or ``error <text>``:

    topic <name> <partitions>   create a topic
    down | up                   take the broker offline / bring it back
    quit                        stop (so does the end of stdin)

The C functions come from the librdkafka that confluent-kafka bundles (its Python
API does not expose the mock cluster's controls).
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

BROKER_ID = 1


def _librdkafka() -> ctypes.CDLL:
    import confluent_kafka

    package = os.path.dirname(confluent_kafka.__file__)
    found = glob.glob(os.path.join(package, os.pardir, "confluent_kafka.libs", "librdkafka*.so*"))
    lib = ctypes.CDLL(found[0] if found else "librdkafka.so.1")
    vp, cp, i32 = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32
    lib.rd_kafka_conf_new.restype = vp
    lib.rd_kafka_new.restype = vp
    lib.rd_kafka_new.argtypes = [ctypes.c_int, vp, cp, ctypes.c_size_t]
    lib.rd_kafka_mock_cluster_new.restype = vp
    lib.rd_kafka_mock_cluster_new.argtypes = [vp, ctypes.c_int]
    lib.rd_kafka_mock_cluster_bootstraps.restype = cp
    lib.rd_kafka_mock_cluster_bootstraps.argtypes = [vp]
    lib.rd_kafka_mock_topic_create.argtypes = [vp, cp, ctypes.c_int, ctypes.c_int]
    lib.rd_kafka_mock_group_initial_rebalance_delay_ms.argtypes = [vp, i32]
    lib.rd_kafka_mock_broker_set_down.argtypes = [vp, i32]
    lib.rd_kafka_mock_broker_set_up.argtypes = [vp, i32]
    return lib


def serve() -> None:
    lib = _librdkafka()
    errors = ctypes.create_string_buffer(512)
    handle = lib.rd_kafka_new(0, lib.rd_kafka_conf_new(), errors, len(errors))
    if not handle:
        raise SystemExit(f"rd_kafka_new failed: {errors.value.decode()}")
    cluster = lib.rd_kafka_mock_cluster_new(handle, 1)
    # Groups form at once instead of waiting for more members (the broker default is 3 s).
    lib.rd_kafka_mock_group_initial_rebalance_delay_ms(cluster, 0)
    print("ready", lib.rd_kafka_mock_cluster_bootstraps(cluster).decode(), flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "quit":
            break
        if words[0] == "topic" and len(words) == 3:
            code = lib.rd_kafka_mock_topic_create(cluster, words[1].encode(), int(words[2]), 1)
        elif words[0] == "down":
            code = lib.rd_kafka_mock_broker_set_down(cluster, BROKER_ID)
        elif words[0] == "up":
            code = lib.rd_kafka_mock_broker_set_up(cluster, BROKER_ID)
        else:
            print(f"error unknown command {line.strip()!r}", flush=True)
            continue
        print("ok" if code == 0 else f"error code {code}", flush=True)


class MockKafka:
    """Drives the helper process; produces and reads offsets with real clients."""

    def __init__(self) -> None:
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tests.kafka.mock_cluster"],
            cwd=root,
            env={**os.environ, "PYTHONPATH": root},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        first = self._read()
        if not first.startswith("ready "):
            self.close()
            raise RuntimeError(f"mock Kafka cluster did not start: {first!r}")
        self.bootstrap = first.split()[1]
        self._producer: Any = None

    def _read(self) -> str:
        assert self._proc.stdout is not None
        return self._proc.stdout.readline().strip()

    def _command(self, text: str) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(text + "\n")
        self._proc.stdin.flush()
        answer = self._read()
        if answer != "ok":
            raise RuntimeError(f"mock Kafka cluster: {text!r} failed: {answer!r}")

    def create_topic(self, name: str, partitions: int = 3) -> None:
        self._command(f"topic {name} {partitions}")

    def broker_down(self) -> None:
        self._command("down")

    def broker_up(self) -> None:
        self._command("up")

    def producer(self) -> Any:
        from confluent_kafka import Producer

        if self._producer is None:
            self._producer = Producer(
                {"bootstrap.servers": self.bootstrap, "linger.ms": 5, "log_level": 0}
            )
        return self._producer

    def produce(
        self,
        topic: str,
        values: Iterable[bytes],
        *,
        partition: int | None = None,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> None:
        """Produce and wait until the broker has every message."""
        producer = self.producer()
        failures: list[Any] = []

        def delivered(err: Any, _msg: Any) -> None:
            if err is not None:
                failures.append(err)

        for value in values:
            kwargs: dict[str, Any] = {"value": value, "key": key, "on_delivery": delivered}
            if partition is not None:
                kwargs["partition"] = partition
            if headers is not None:
                kwargs["headers"] = list(headers)
            producer.produce(topic, **kwargs)
            producer.poll(0)
        if producer.flush(30) != 0 or failures:
            raise RuntimeError(f"produce to {topic} failed: {failures or 'flush timed out'}")

    def produce_to_partitions(self, topic: str, records: Iterable[tuple[int, bytes]]) -> None:
        """Produce (partition, value) records in one go and wait until all are stored."""
        producer = self.producer()
        failures: list[Any] = []

        def delivered(err: Any, _msg: Any) -> None:
            if err is not None:
                failures.append(err)

        for partition, value in records:
            producer.produce(topic, value=value, partition=partition, on_delivery=delivered)
        if producer.flush(30) != 0 or failures:
            raise RuntimeError(f"produce to {topic} failed: {failures or 'flush timed out'}")

    def end_offsets(self, topic: str, partitions: int) -> list[int]:
        """The next offset to be written in each partition (the high watermarks)."""
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "offsets-reader"})
        try:
            return [
                consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in range(partitions)
            ]
        finally:
            consumer.close()

    def committed(self, group: str, topic: str, partitions: int) -> list[int]:
        """The group's committed offsets (-1001 where it committed none)."""
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": group})
        try:
            found = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], 10)
            return [tp.offset for tp in sorted(found, key=lambda tp: tp.partition)]
        finally:
            consumer.close()

    def rewind(self, group: str, topic: str, partitions: int, offset: int = 0) -> None:
        """Commit ``offset`` for every partition: the group reads them all again.

        Commits as a member of the group (the mock broker refuses commits from
        outside), so the group's consumers must be stopped first. The mock broker
        makes the next member wait the group's session timeout less a second, so
        this member uses the short one the tests' consumers use.
        """
        import time

        from confluent_kafka import Consumer, TopicPartition

        assigned: list[Any] = []
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": group,
                "enable.auto.commit": False,
                "session.timeout.ms": 3000,
                "heartbeat.interval.ms": 300,
            }
        )
        try:
            consumer.subscribe([topic], on_assign=lambda _c, parts: assigned.extend(parts))
            deadline = time.monotonic() + 30
            while len(assigned) < partitions and time.monotonic() < deadline:
                consumer.poll(0.1)
            if len(assigned) < partitions:
                raise RuntimeError(f"rewind of {group}: got only {len(assigned)} partitions")
            offsets = [TopicPartition(topic, p, offset) for p in range(partitions)]
            consumer.commit(offsets=offsets, asynchronous=False)
        finally:
            consumer.close()

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(5)
            self._producer = None
        if self._proc.poll() is None:
            with contextlib.suppress(BrokenPipeError, OSError):
                assert self._proc.stdin is not None
                self._proc.stdin.write("quit\n")
                self._proc.stdin.close()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
        if self._proc.stdout is not None:
            self._proc.stdout.close()


@contextlib.contextmanager
def mock_kafka() -> Iterator[MockKafka]:
    cluster = MockKafka()
    try:
        yield cluster
    finally:
        cluster.close()


if __name__ == "__main__":
    serve()
