"""Kafka consumers when things go wrong: broker outages, recovery, bad configuration."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dbos_core import DBOS, JsonSerializer, KafkaMessage, Serializer, kafka_workflow_id
from dbos_core.kafka import DBOSKafkaError
from dbos_core.kafka.spec import registered_consumers
from tests.core.crashutil import wait_for
from tests.kafka.mock_cluster import MockKafka
from tests.kafka.test_consumer import all_committed


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append((record.levelno, record.getMessage()))

    def matching(self, level: int, text: str) -> list[str]:
        return [m for lvl, m in list(self.messages) if lvl == level and text in m]


@pytest.fixture()
def kafka_log() -> Iterator[Records]:
    logger = logging.getLogger("dbos.kafka")
    handler = Records()
    level = logger.level
    logger.setLevel(logging.DEBUG)  # to see the client's own lines, kept at DEBUG
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_broker_outage_is_logged_once_and_consumption_resumes(
    consumers: list[Any],
    kafka: MockKafka,
    consumer_config: dict[str, Any],
    topic: str,
    kafka_log: Records,
) -> None:
    seen: list[bytes | None] = []

    @DBOS.kafka_consumer(consumer_config, [topic])
    @DBOS.workflow()
    def through_outage(msg: KafkaMessage) -> None:
        seen.append(msg.value)

    consumers.append(through_outage)
    kafka.produce(topic, [b"before-1", b"before-2"], partition=0)
    wait_for(lambda: len(seen) == 2, what="messages before the outage")

    kafka.broker_down()
    wait_for(
        lambda: kafka_log.matching(logging.WARNING, "cannot reach the Kafka cluster"),
        what="the outage to be noticed",
    )
    kafka.broker_up()
    kafka.produce(topic, [b"after-1", b"after-2"], partition=1)
    wait_for(lambda: len(seen) == 4, what="messages after the outage")
    wait_for(
        lambda: kafka_log.matching(logging.INFO, "connected to the Kafka cluster again"),
        what="the recovery to be logged",
    )
    assert sorted(v or b"" for v in seen) == [b"after-1", b"after-2", b"before-1", b"before-2"]
    assert len(kafka_log.matching(logging.WARNING, "cannot reach the Kafka cluster")) == 1
    # The client's own reconnect noise stays at DEBUG.
    client_lines = [(lvl, m) for lvl, m in kafka_log.messages if m.startswith("librdkafka:")]
    assert not [m for lvl, m in client_lines if lvl >= logging.WARNING and "Connect to" in m]
    wait_for(all_committed(kafka, consumer_config["group.id"], topic), what="offsets committed")


def test_json_serializer_stores_and_recovers_the_message(
    consumers: list[Any],
    kafka: MockKafka,
    consumer_config: dict[str, Any],
    topic: str,
    relaunch: Callable[..., None],
) -> None:
    relaunch(serializer=JsonSerializer())
    first_try = threading.Event()
    go_on = threading.Event()
    received: list[KafkaMessage] = []

    @DBOS.step()
    def park(value: bytes | None) -> None:
        if not go_on.is_set():
            first_try.set()
            go_on.wait(10)
            raise RuntimeError("the process is going away")

    @DBOS.kafka_consumer(consumer_config, [topic])
    @DBOS.workflow()
    def parked(msg: KafkaMessage) -> str:
        received.append(msg)
        park(msg.value)
        return (msg.value or b"").hex()

    consumers.append(parked)
    kafka.produce(topic, [b"\x00binary\xff"], partition=2, key=b"\x01", headers=[("h", b"\xfe")])
    assert first_try.wait(20)
    workflow_id = kafka_workflow_id(consumer_config["group.id"], topic, 2, 0)
    DBOS.destroy()  # the workflow stays PENDING; its input is stored as JSON
    go_on.set()
    relaunch(serializer=JsonSerializer())
    handle = DBOS.retrieve_workflow(workflow_id)
    assert handle.get_result(timeout=20) == b"\x00binary\xff".hex()
    recovered = received[-1]
    assert len(received) == 2
    assert isinstance(recovered, KafkaMessage)
    assert recovered == received[0]
    assert recovered.value == b"\x00binary\xff" and recovered.key == b"\x01"
    assert recovered.headers == (("h", b"\xfe"),)


def test_regex_subscription_covers_matching_topics(
    consumers: list[Any], kafka: MockKafka, consumer_config: dict[str, Any]
) -> None:
    prefix = f"events-{uuid.uuid4().hex[:6]}"
    for suffix in ("signup", "login"):
        kafka.create_topic(f"{prefix}-{suffix}", 1)
    kafka.create_topic(f"other-{prefix}", 1)
    topics: list[str] = []

    @DBOS.kafka_consumer(consumer_config, [f"^{prefix}-.*"])
    @DBOS.workflow()
    def any_event(msg: KafkaMessage) -> None:
        topics.append(msg.topic)

    consumers.append(any_event)
    kafka.produce(f"{prefix}-signup", [b"s"])
    kafka.produce(f"{prefix}-login", [b"l"])
    kafka.produce(f"other-{prefix}", [b"o"])
    wait_for(lambda: len(topics) == 2, what="both matching topics")
    assert sorted(topics) == [f"{prefix}-login", f"{prefix}-signup"]
    group = consumer_config["group.id"]
    wait_for(
        lambda: (
            kafka.committed(group, f"{prefix}-login", 1) == [1]
            and kafka.committed(group, f"{prefix}-signup", 1) == [1]
        ),
        what="offsets committed",
    )
    assert kafka.committed(group, f"other-{prefix}", 1) == [-1001]


class ReprSerializer(Serializer):
    """Stores anything as its repr: cannot give a KafkaMessage back."""

    def serialize(self, data: Any) -> str:
        return repr(data)

    def deserialize(self, serialized_data: str) -> Any:
        return serialized_data


def test_serializer_that_cannot_store_a_message_is_refused(
    consumers: list[Any], consumer_config: dict[str, Any], relaunch: Callable[..., None]
) -> None:
    relaunch(serializer=ReprSerializer())

    @DBOS.workflow()
    def never(msg: KafkaMessage) -> None:
        pass

    with pytest.raises(DBOSKafkaError, match="ReprSerializer cannot store a KafkaMessage"):
        DBOS.kafka_consumer(consumer_config, ["t"])(never)
    consumers.append(never)


def test_invalid_client_setting_fails_where_declared(
    consumers: list[Any], consumer_config: dict[str, Any]
) -> None:
    @DBOS.workflow()
    def misconfigured(msg: KafkaMessage) -> None:
        pass

    consumers.append(misconfigured)
    with pytest.raises(DBOSKafkaError, match="invalid consumer configuration.*no.such.setting"):
        DBOS.kafka_consumer({**consumer_config, "no.such.setting": "1"}, ["t"])(misconfigured)
    # Refused, so not declared: the next launch does not trip over it.
    assert misconfigured.__qualname__ not in [s.reg.name for s in registered_consumers()]


def test_invalid_client_setting_fails_launch(
    kafka: MockKafka, dbos_config: dict[str, Any], consumer_config: dict[str, Any]
) -> None:
    DBOS.destroy()

    @DBOS.workflow()
    def declared_early(msg: KafkaMessage) -> None:
        pass

    try:
        DBOS.kafka_consumer({**consumer_config, "session.timeout.ms": "soon"}, ["t"])(
            declared_early
        )
        DBOS(config=dbos_config)  # type: ignore[arg-type]
        with pytest.raises(DBOSKafkaError, match="session.timeout.ms"):
            DBOS.launch()
    finally:
        DBOS.destroy()
        from dbos_core.kafka import unregister_kafka_consumers

        unregister_kafka_consumers(declared_early.__qualname__)


def test_destroy_during_a_broker_outage_stops_the_consumer(
    consumers: list[Any],
    kafka: MockKafka,
    consumer_config: dict[str, Any],
    topic: str,
    kafka_log: Records,
    relaunch: Callable[..., None],
) -> None:
    seen: list[int] = []

    @DBOS.kafka_consumer(consumer_config, [topic])
    @DBOS.workflow()
    def cut_off(msg: KafkaMessage) -> None:
        seen.append(msg.offset)

    consumers.append(cut_off)
    kafka.produce(topic, [b"1", b"2"], partition=0)
    wait_for(lambda: len(seen) == 2, what="messages before the outage")
    # No commit in flight when the broker goes: librdkafka's close() waits for an
    # unanswered commit up to the session timeout (documented), which is not under test.
    wait_for(
        all_committed(kafka, consumer_config["group.id"], topic),
        what="the offsets of the first messages committed",
    )
    threads = [t for t in threading.enumerate() if t.name == f"dbos-kafka-{cut_off.__qualname__}"]
    assert len(threads) == 1
    kafka.broker_down()
    wait_for(
        lambda: kafka_log.matching(logging.WARNING, "cannot reach the Kafka cluster"),
        what="the outage to be noticed",
    )
    # No commit or group leave can reach the broker: the stop must not wait for one.
    DBOS.destroy()
    assert not threads[0].is_alive()
    assert not kafka_log.matching(logging.WARNING, "did not stop")
    kafka.broker_up()
    # Whatever was not committed is delivered again and finds its workflow.
    relaunch()
    kafka.produce(topic, [b"3"], partition=0)
    wait_for(lambda: len(seen) == 3, what="the message after the outage")
    assert sorted(seen) == [0, 1, 2]
    wait_for(all_committed(kafka, consumer_config["group.id"], topic), what="offsets committed")
