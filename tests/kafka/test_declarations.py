"""The parts of Kafka consumers that need no broker: IDs, the message value, bad input."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from dbos_core import DBOS, JsonSerializer, KafkaMessage, PickleSerializer, kafka_workflow_id
from dbos_core.error import DBOSSerializationError
from dbos_core.kafka import DBOSKafkaError
from dbos_core.kafka.message import partition_key
from dbos_core.serialization import serialize_value

CONFIG = {"bootstrap.servers": "127.0.0.1:9", "group.id": "orders", "auto.offset.reset": "earliest"}


def test_workflow_id_names_group_topic_partition_and_offset() -> None:
    assert kafka_workflow_id("orders", "alerts-topic", 2, 42) == (
        "kafka:orders:alerts-topic:2:0000000000000000042"
    )


def test_workflow_ids_of_a_partition_sort_in_offset_order() -> None:
    offsets = [0, 9, 10, 99, 100, 12345678901, 2**63 - 1]
    ids = [kafka_workflow_id("g", "t", 0, offset) for offset in offsets]
    assert sorted(ids) == ids


def test_odd_or_long_names_are_hashed_into_short_printable_ids() -> None:
    odd_group = "team a/ñ:\n\x00" + "x" * 500
    workflow_id = kafka_workflow_id(odd_group, "t" * 249, 7, 2**63 - 1)
    assert len(workflow_id) <= 166
    assert workflow_id.isprintable() and workflow_id.isascii()
    assert workflow_id.startswith("kafka:~") and ":~" in workflow_id[7:]
    # Different names never share an ID, hashed or not.
    assert kafka_workflow_id("a:b", "c", 0, 1) != kafka_workflow_id("a", "b:c", 0, 1)
    assert kafka_workflow_id(odd_group, "t", 0, 1) != kafka_workflow_id(odd_group + "y", "t", 0, 1)
    longest_plain = kafka_workflow_id("g" * 64, "t" * 64, 2**31 - 1, 2**63 - 1)
    assert len(longest_plain) <= 166 and "~" not in longest_plain
    # The in_order queue's partition key is kept as short and printable.
    key = partition_key(odd_group, "t" * 249, 2**31 - 1)
    assert len(key) <= 140 and key.isprintable() and key.isascii()


MESSAGES = [
    KafkaMessage(
        "alerts",
        1,
        17,
        b"\x00key",
        b"\xffvalue",
        (("h", b"1"), ("none", None)),
        1234,
        "create_time",
    ),
    KafkaMessage("alerts", 0, 0, None, None),
]


@pytest.mark.parametrize("msg", MESSAGES)
@pytest.mark.parametrize("serializer", [PickleSerializer(), JsonSerializer()])
def test_message_round_trips_through_both_serializers(msg: KafkaMessage, serializer: Any) -> None:
    inputs = {"args": (msg,), "kwargs": {}}
    back = serializer.deserialize(serializer.serialize(inputs))
    assert back["args"][0] == msg
    assert isinstance(back["args"][0].value, (bytes, type(None)))


def test_message_pickles_and_reads_headers() -> None:
    msg = MESSAGES[0]
    assert pickle.loads(pickle.dumps(msg)) == msg
    assert msg.header("none") is None and msg.header("h") == b"1"
    assert msg.size == len(b"\x00key") + len(b"\xffvalue") + len("h") + 1 + len("none")


def test_json_serializer_still_refuses_unknown_objects_clearly() -> None:
    class Custom:
        pass

    with pytest.raises(DBOSSerializationError, match="Object of type Custom is not JSON"):
        serialize_value(JsonSerializer(), Custom(), "inputs of workflow 'w'")
    # A user's dict that happens to use the tag key is left alone unless it is a tag.
    plain = {"__dbos_type__": "kafka_message", "data": {"x": 1}, "more": 2}
    assert JsonSerializer().deserialize(JsonSerializer().serialize(plain)) == plain


def _workflow(name: str) -> Any:
    def body(msg: KafkaMessage) -> None:
        pass

    body.__qualname__ = name
    return DBOS.workflow(name=name)(body)


@pytest.mark.parametrize(
    ("config", "topics", "kwargs", "message"),
    [
        ({**CONFIG, "group.id": ""}, ["t"], {}, "needs a 'group.id'"),
        ({"group.id": "g"}, ["t"], {}, "needs 'bootstrap.servers'"),
        ({**CONFIG, "enable.auto.commit": True}, ["t"], {}, "enable.auto.commit=True"),
        ("bootstrap.servers=x", ["t"], {}, "config must be a dict"),
        (CONFIG, [], {}, "non-empty list"),
        (CONFIG, ["ok", ""], {}, "each topic must be a non-empty string"),
        (CONFIG, ["^orders-("], {}, "not a valid regex"),
        (CONFIG, ["t"], {"in_order": "yes"}, "in_order must be True or False"),
        (CONFIG, ["t"], {"in_order": True, "max_concurrency": 4}, "max_concurrency applies"),
        (CONFIG, ["t"], {"max_concurrency": 0}, "max_concurrency must be a positive integer"),
        (CONFIG, ["t"], {"max_message_bytes": -1}, "max_message_bytes must be a positive"),
    ],
)
def test_bad_declarations_fail_where_written(
    config: Any, topics: Any, kwargs: dict[str, Any], message: str
) -> None:
    wf = _workflow(f"bad_declaration_{abs(hash(message))}")
    with pytest.raises(DBOSKafkaError, match=message):
        DBOS.kafka_consumer(config, topics, **kwargs)(wf)


def test_consumer_must_decorate_a_one_argument_workflow() -> None:
    def plain(msg: KafkaMessage) -> None:
        pass

    with pytest.raises(DBOSKafkaError, match="must be applied to a workflow"):
        DBOS.kafka_consumer(CONFIG, ["t"])(plain)

    @DBOS.workflow()
    def two_args(msg: KafkaMessage, extra: int) -> None:
        pass

    with pytest.raises(DBOSKafkaError, match="must take one argument"):
        DBOS.kafka_consumer(CONFIG, ["t"])(two_args)
