"""Declaring a Kafka consumer (``@DBOS.kafka_consumer``): validation and the registry.

Everything the decorator is given is checked here, at import time, so that a typo
fails where it was written rather than in a background thread after launch.
"""

from __future__ import annotations

import inspect
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..error import DBOSException
from ..runtime.registry import Registration

DEFAULT_MAX_CONCURRENCY = 100

# Settings that would let the client commit offsets before the workflow exists.
_OWNED_SETTINGS = {"enable.auto.commit": False}


class DBOSKafkaError(DBOSException):
    """A Kafka consumer that cannot work (bad configuration, missing client library)."""

    code = "KAFKA"


@dataclass(eq=False)
class KafkaConsumerSpec:
    reg: Registration
    config: dict[str, Any]
    topics: list[str]
    group_id: str
    in_order: bool
    max_concurrency: int
    max_message_bytes: int | None
    # The queue that runs the workflows one partition at a time (in_order only).
    queue_name: str | None

    @property
    def description(self) -> str:
        return f"Kafka consumer {self.group_id!r} of {self.reg.name!r}"

    @property
    def key(self) -> tuple[str, str, tuple[str, ...], Any]:
        """What makes two declarations the same consumer (a re-import replaces it)."""
        return (
            self.reg.name,
            self.group_id,
            tuple(self.topics),
            self.config.get("bootstrap.servers"),
        )


_lock = threading.Lock()
_specs: list[KafkaConsumerSpec] = []
# Called with each consumer declared while a runtime runs (the service starts it).
on_register: list[Callable[[KafkaConsumerSpec], None]] = []


def registered_consumers() -> list[KafkaConsumerSpec]:
    with _lock:
        return list(_specs)


def unregister_kafka_consumers(workflow_name: str) -> list[KafkaConsumerSpec]:
    """Forget the consumers of a workflow (tests; a running consumer stops separately)."""
    with _lock:
        gone = [s for s in _specs if s.reg.name == workflow_name]
        _specs[:] = [s for s in _specs if s.reg.name != workflow_name]
    return gone


def in_order_queue_name(workflow_name: str) -> str:
    return f"_dbos_kafka:{workflow_name}"


def register_kafka_consumer(
    func: Callable[..., Any],
    config: Mapping[str, Any],
    topics: str | Sequence[str],
    *,
    in_order: bool = False,
    max_concurrency: int | None = None,
    max_message_bytes: int | None = None,
) -> KafkaConsumerSpec:
    _require_client()
    reg = _workflow_registration(func)
    where = f"@DBOS.kafka_consumer on {reg.name!r}"
    settings = _consumer_settings(config, where)
    topic_list = _topic_list(topics, where)
    if not isinstance(in_order, bool):
        raise DBOSKafkaError(f"{where}: in_order must be True or False, got {in_order!r}")
    if in_order and max_concurrency is not None:
        raise DBOSKafkaError(
            f"{where}: max_concurrency applies to in_order=False; with in_order=True each "
            "partition runs one workflow at a time"
        )
    concurrency = DEFAULT_MAX_CONCURRENCY if max_concurrency is None else max_concurrency
    _positive_int(concurrency, "max_concurrency", where)
    if max_message_bytes is not None:
        _positive_int(max_message_bytes, "max_message_bytes", where)
    queue_name = None
    if in_order:
        from ..queue import Queue

        queue_name = in_order_queue_name(reg.name)
        # Partitioned by topic and partition, one at a time in each, across all processes.
        Queue(queue_name, concurrency=1, partition_queue=True)
    spec = KafkaConsumerSpec(
        reg=reg,
        config=settings,
        topics=topic_list,
        group_id=settings["group.id"],
        in_order=in_order,
        max_concurrency=concurrency,
        max_message_bytes=max_message_bytes,
        queue_name=queue_name,
    )
    with _lock:
        # Declaring the same consumer again (a re-import) replaces it.
        _specs[:] = [s for s in _specs if s.key != spec.key]
        _specs.append(spec)
    try:
        for hook in list(on_register):
            hook(spec)
    except BaseException:
        # Declared while DBOS runs and refused (bad settings): not declared at all.
        with _lock:
            if spec in _specs:
                _specs.remove(spec)
        raise
    return spec


def _require_client() -> None:
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        raise DBOSKafkaError(
            "@DBOS.kafka_consumer needs the confluent-kafka client: pip install 'dbos-suite[kafka]'"
        ) from None


def _workflow_registration(func: Callable[..., Any]) -> Registration:
    reg = getattr(func, "__dbos_registration__", None)
    if not isinstance(reg, Registration) or reg.kind != "workflow":
        raise DBOSKafkaError(
            "@DBOS.kafka_consumer(...) must be applied to a workflow: put it above "
            f"@DBOS.workflow() on {getattr(func, '__qualname__', func)!r}"
        )
    if reg.is_method:
        raise DBOSKafkaError(
            f"@DBOS.kafka_consumer on {reg.name!r}: consumers start module-level workflow "
            "functions, not methods"
        )
    try:
        inspect.signature(reg.func).bind(None)
    except TypeError:
        raise DBOSKafkaError(
            f"Kafka consumer workflow {reg.name!r} must take one argument (the KafkaMessage)"
        ) from None
    return reg


def _consumer_settings(config: Mapping[str, Any], where: str) -> dict[str, Any]:
    if not isinstance(config, Mapping) or not all(isinstance(k, str) for k in config):
        raise DBOSKafkaError(
            f"{where}: config must be a dict of confluent-kafka consumer settings, "
            f"got {type(config).__name__}"
        )
    settings = dict(config)
    group = settings.get("group.id")
    if not isinstance(group, str) or not group:
        raise DBOSKafkaError(
            f"{where}: config needs a 'group.id' (it is part of each workflow's ID, so that "
            "a redelivered message finds the workflow it already started)"
        )
    if not settings.get("bootstrap.servers") and not settings.get("metadata.broker.list"):
        raise DBOSKafkaError(f"{where}: config needs 'bootstrap.servers'")
    for key, required in _OWNED_SETTINGS.items():
        if key in settings and settings[key] not in (required, str(required).lower()):
            raise DBOSKafkaError(
                f"{where}: {key}={settings[key]!r} is not allowed: offsets are committed by "
                "DBOS, only after each message's workflow is durably started"
            )
        settings[key] = required
    return settings


def _topic_list(topics: str | Sequence[str], where: str) -> list[str]:
    names = [topics] if isinstance(topics, str) else topics
    if not isinstance(names, Sequence) or not names:
        raise DBOSKafkaError(f"{where}: topics must be a non-empty list of names, got {topics!r}")
    result: list[str] = []
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise DBOSKafkaError(f"{where}: each topic must be a non-empty string, got {name!r}")
        if name.startswith("^"):
            # confluent-kafka subscribes to every topic matching a pattern that starts with ^.
            try:
                re.compile(name)
            except re.error as exc:
                raise DBOSKafkaError(
                    f"{where}: topic pattern {name!r} is not a valid regex: {exc}"
                ) from None
        result.append(name)
    return result


def _positive_int(value: Any, name: str, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DBOSKafkaError(f"{where}: {name} must be a positive integer, got {value!r}")
