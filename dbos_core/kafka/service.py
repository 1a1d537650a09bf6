"""The runtime service that runs every declared Kafka consumer.

Started at ``DBOS.launch()`` after recovery and the queue dispatcher, stopped first at
``destroy()``: each consumer commits what it started and leaves its group, so the
group rebalances at once. A consumer declared while DBOS runs starts right away.
"""

from __future__ import annotations

import threading
from typing import Any

from ..error import DBOSException
from ..runtime import dispatcher as _dispatcher  # noqa: F401  (its service starts before ours)
from ..runtime.registry import Registration, registry
from ..runtime.runtime import Runtime, Service, service_factories
from .message import KafkaMessage
from .spec import DBOSKafkaError, KafkaConsumerSpec, on_register, registered_consumers

REJECTED_MESSAGE_WORKFLOW = "dbos.kafka.rejected_message"


class DBOSKafkaMessageRejectedError(DBOSException):
    """The error recorded for a message that was skipped instead of starting a workflow."""

    code = "KAFKA_MESSAGE_REJECTED"


def _rejected_message(details: dict[str, Any]) -> None:
    raise DBOSKafkaMessageRejectedError(
        f"Kafka message {details['topic']}[{details['partition']}]@{details['offset']} "
        f"for workflow {details['workflow']!r} was skipped: {details['reason']}"
    )


def rejected_message_registration() -> Registration:
    """The internal workflow that records a skipped message (registered again if a
    test cleared the registry)."""
    reg = registry.get(REJECTED_MESSAGE_WORKFLOW)
    if reg is None:
        reg = registry.register(_rejected_message, "workflow", name=REJECTED_MESSAGE_WORKFLOW)
    return reg


rejected_message_registration()

_SAMPLE = KafkaMessage(
    "topic", 0, 1, b"key", b"\x00\xffvalue", (("h", b"\x01"), ("empty", None)), 1, "create_time"
)


class KafkaService:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._lock = threading.Lock()
        self._loops: dict[Any, Any] = {}
        self._running = False
        self._serializer_checked = False

    def start(self) -> None:
        with self._lock:
            self._running = True
        on_register.append(self._declared_while_running)
        try:
            for spec in registered_consumers():
                self._start_consumer(spec)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        with self._lock:
            self._running = False
            loops = list(self._loops.values())
            self._loops.clear()
        if self._declared_while_running in on_register:
            on_register.remove(self._declared_while_running)
        # Ask all first, then wait: each one finishes its batch, commits and leaves.
        for loop in loops:
            loop.request_stop()
        for loop in loops:
            loop.join()

    def consumers(self) -> list[Any]:
        with self._lock:
            return list(self._loops.values())

    def _declared_while_running(self, spec: KafkaConsumerSpec) -> None:
        if self._running:
            self._start_consumer(spec)

    def _start_consumer(self, spec: KafkaConsumerSpec) -> None:
        from .loop import ConsumerLoop

        # A workflow dropped from the registry (or declared again since) stays off.
        if registry.get(spec.reg.name) is not spec.reg:
            return
        self._check_serializer(spec)
        with self._lock:
            if not self._running:
                return
            old = self._loops.pop(spec.key, None)
        if old is not None:
            old.stop()
        loop = ConsumerLoop(self.rt, spec)
        with self._lock:
            self._loops[spec.key] = loop
        loop.start()

    def _check_serializer(self, spec: KafkaConsumerSpec) -> None:
        """The message is the workflow's input: the serializer must give it back intact."""
        if self._serializer_checked:
            return
        serializer = self.rt.serializer
        try:
            back = serializer.deserialize(serializer.serialize(_SAMPLE))
        except Exception as exc:
            back = exc
        if back != _SAMPLE:
            raise DBOSKafkaError(
                f"{spec.description}: the configured serializer "
                f"{type(serializer).__name__} cannot store a KafkaMessage (it gave back "
                f"{back!r}); use the default PickleSerializer or JsonSerializer, or make "
                "yours round-trip dbos_core.KafkaMessage"
            )
        self._serializer_checked = True


def kafka_service_of(rt: Runtime) -> KafkaService | None:
    for service in rt.services:
        if isinstance(service, KafkaService):
            return service
    return None


def _make_kafka_service(rt: Runtime) -> Service | None:
    return KafkaService(rt)


# Last: the consumers start once recovery and the queue dispatcher run, and stop first.
service_factories.append(_make_kafka_service)
