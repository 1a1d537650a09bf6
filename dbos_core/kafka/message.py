"""The message a Kafka-triggered workflow receives, and the workflow ID it runs under.

``KafkaMessage`` is a plain value (no client object inside), so it is stored with the
workflow's inputs and handed back unchanged when the workflow is recovered: pickled by
the default serializer, written as a tagged JSON object (bytes in base64) by
``JsonSerializer``.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from typing import Any

from ..serialization import register_json_type

# Timestamp kinds as Kafka names them (librdkafka's 0, 1, 2).
_TIMESTAMP_TYPES = {1: "create_time", 2: "log_append_time"}


@dataclass(frozen=True)
class KafkaMessage:
    """One record of a topic: where it came from and its raw bytes."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()
    # Milliseconds since the epoch, or None when the broker gave none.
    timestamp: int | None = None
    # "create_time" (set by the producer) or "log_append_time" (set by the broker).
    timestamp_type: str | None = None

    def header(self, name: str) -> bytes | None:
        """The value of the first header called ``name`` (None if there is none)."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    @property
    def size(self) -> int:
        """Bytes of key, value and headers: what the message costs to store."""
        total = len(self.key or b"") + len(self.value or b"")
        for name, value in self.headers:
            total += len(name.encode()) + len(value or b"")
        return total


def from_confluent(msg: Any) -> KafkaMessage:
    """Copy a confluent-kafka ``Message`` (which must not outlive the consumer)."""
    ts_type, ts = msg.timestamp()
    headers = msg.headers() or []
    return KafkaMessage(
        topic=msg.topic(),
        partition=msg.partition(),
        offset=msg.offset(),
        key=_as_bytes(msg.key()),
        value=_as_bytes(msg.value()),
        headers=tuple((str(name), _as_bytes(value)) for name, value in headers),
        timestamp=ts if ts_type in _TIMESTAMP_TYPES else None,
        timestamp_type=_TIMESTAMP_TYPES.get(ts_type),
    )


def _as_bytes(value: Any) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return bytes(value)


# -- workflow IDs ----------------------------------------------------------------------

# A group or topic made only of these (Kafka's own topic alphabet), and not too long,
# appears as itself in the ID; anything else is replaced by "~" and a hash, so IDs stay
# short, printable and unambiguous (":" and "~" never occur in a plain part).
_PLAIN_PART = re.compile(r"[A-Za-z0-9._-]{1,64}")


def _id_part(text: str) -> str:
    if _PLAIN_PART.fullmatch(text):
        return text
    return "~" + hashlib.sha256(text.encode()).hexdigest()[:24]


def kafka_workflow_id(group_id: str, topic: str, partition: int, offset: int) -> str:
    """The ID of the workflow that a consumer group starts for one message.

    ``kafka:<group>:<topic>:<partition>:<offset>``, the offset zero-padded to 19
    digits so that IDs of one partition sort in offset order. At most 166 characters.
    """
    return f"kafka:{_id_part(group_id)}:{_id_part(topic)}:{partition}:{offset:019d}"


def partition_key(group_id: str, topic: str, partition: int) -> str:
    """The queue partition of an in_order consumer's workflows (short and printable too)."""
    return f"{_id_part(group_id)}:{_id_part(topic)}:{partition}"


# -- JSON ------------------------------------------------------------------------------


def _b64(value: bytes | None) -> str | None:
    return None if value is None else base64.b64encode(value).decode("ascii")


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def _to_json(msg: KafkaMessage) -> dict[str, Any]:
    return {
        "topic": msg.topic,
        "partition": msg.partition,
        "offset": msg.offset,
        "key": _b64(msg.key),
        "value": _b64(msg.value),
        "headers": [[name, _b64(value)] for name, value in msg.headers],
        "timestamp": msg.timestamp,
        "timestamp_type": msg.timestamp_type,
    }


def _from_json(data: dict[str, Any]) -> KafkaMessage:
    return KafkaMessage(
        topic=data["topic"],
        partition=data["partition"],
        offset=data["offset"],
        key=_unb64(data["key"]),
        value=_unb64(data["value"]),
        headers=tuple((name, _unb64(value)) for name, value in data["headers"]),
        timestamp=data["timestamp"],
        timestamp_type=data["timestamp_type"],
    )


register_json_type(KafkaMessage, "kafka_message", _to_json, _from_json)
