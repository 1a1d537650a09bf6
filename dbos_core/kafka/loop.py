"""One Kafka consumer: poll, start each message's workflow durably, then commit.

The order of those two is the whole guarantee. A message's offset is committed only
after the row of its workflow exists in the system database (started, or enqueued
when ``in_order``). A crash in between redelivers the message, and its workflow ID
(``kafka_workflow_id``) finds the row already there, so nothing starts twice.

One thread per consumer owns the confluent-kafka ``Consumer`` (the client is not
thread-safe); rebalance, commit, error and log callbacks all run on that thread,
inside ``consume()``. Starting a workflow costs one INSERT; its body runs on the
workflow pool (or the event loop) like any started workflow, bounded by
``max_concurrency``: when that many are running, the assigned partitions are paused
(the consumer keeps polling, so it stays in its group) until one finishes.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from ..runtime.runtime import Runtime
from .message import KafkaMessage, from_confluent
from .spec import DBOSKafkaError, KafkaConsumerSpec
from .starter import Stopped, WorkflowStarter

if TYPE_CHECKING:
    from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

# How long one consume() call waits for messages: also how fast stop() is noticed.
POLL_TIMEOUT_SEC = 0.25
# Messages taken per consume() call; their offsets are committed together.
BATCH_SIZE = 500
# While the brokers are unreachable and nothing arrives: how often to ask for metadata.
PROBE_INTERVAL_SEC = 2.0
# A commit that did not land (rebalance, outage) is retried this often while idle.
COMMIT_RETRY_SEC = 1.0
MAX_BACKOFF_SEC = 5.0
STOP_TIMEOUT_SEC = 10.0

TopicKey = tuple[str, int]


def _bad_message_codes() -> frozenset[int]:
    from confluent_kafka import KafkaError

    names = ("_BAD_MSG", "_BAD_COMPRESSION", "MSG_SIZE_TOO_LARGE", "INVALID_MSG", "INVALID_RECORD")
    return frozenset(getattr(KafkaError, n) for n in names if hasattr(KafkaError, n))


def _outage_codes() -> frozenset[int]:
    from confluent_kafka import KafkaError

    names = ("_WAIT_COORD", "_TRANSPORT", "_ALL_BROKERS_DOWN", "COORDINATOR_NOT_AVAILABLE")
    return frozenset(getattr(KafkaError, n) for n in names if hasattr(KafkaError, n))


class _ClientLog:
    """Where librdkafka's own log lines go (the ``logger`` setting of the client).

    librdkafka logs every failed reconnect; the loop reports an outage once itself, so
    the client's lines are kept at DEBUG, except its warnings about the configuration.
    """

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger

    def log(self, level: int, msg: str, *args: Any) -> None:
        text = msg % args if args else msg
        if level >= logging.WARNING and "CONFWARN" in text:
            self._logger.warning("librdkafka: %s", text)
        else:
            self._logger.debug("librdkafka: %s", text)


class ConsumerLoop:
    """The thread and client of one ``@DBOS.kafka_consumer``."""

    def __init__(self, rt: Runtime, spec: KafkaConsumerSpec) -> None:
        self.rt = rt
        self.spec = spec
        self.log = rt.logger.getChild("kafka")
        self.name = spec.description
        self._stop = threading.Event()
        self.starter = WorkflowStarter(rt, spec, self.log, self._stop)
        self._paused = False
        # Next offset to commit for each partition we own, and what the group has.
        self._positions: dict[TopicKey, int] = {}
        self._committed: dict[TopicKey, int] = {}
        self._last_commit_retry = 0.0
        self._unreachable = False
        self._closing = False
        self._last_probe = 0.0
        self._fatal: KafkaError | None = None
        self._reported: set[str] = set()
        self._bad_codes = _bad_message_codes()
        self._outage_codes = _outage_codes()
        self._consumer: Consumer | None = self._open()
        self._thread = threading.Thread(
            target=self._run, name=f"dbos-kafka-{spec.reg.name}", daemon=True
        )

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        self._stop.set()
        self.starter.wake()

    def join(self, timeout: float = STOP_TIMEOUT_SEC) -> None:
        self._thread.join(timeout)
        if self._thread.is_alive():
            self.log.warning("%s did not stop within %.0fs", self.name, timeout)

    def stop(self) -> None:
        self.request_stop()
        self.join()

    def _stopping(self) -> bool:
        return self.starter.stopping()

    def _open(self) -> Consumer:
        from confluent_kafka import Consumer, KafkaException

        settings = dict(self.spec.config)
        settings.setdefault("logger", _ClientLog(self.log))
        user_error_cb = settings.pop("error_cb", None)
        user_commit_cb = settings.pop("on_commit", None)

        def on_error(err: KafkaError) -> None:
            self._on_client_error(err)
            if user_error_cb is not None:
                user_error_cb(err)

        def on_commit(err: KafkaError | None, partitions: list[TopicPartition]) -> None:
            self._on_commit(err, partitions)
            if user_commit_cb is not None:
                user_commit_cb(err, partitions)

        settings["error_cb"] = on_error
        settings["on_commit"] = on_commit
        try:
            consumer = Consumer(settings)
            consumer.subscribe(
                self.spec.topics,
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
        except (KafkaException, ValueError, TypeError) as exc:
            raise DBOSKafkaError(f"{self.name}: invalid consumer configuration: {exc}") from exc
        return consumer

    def _run(self) -> None:
        backoff = 0.5
        try:
            while not self._stopping():
                consumer = self._consumer
                try:
                    if consumer is None:
                        consumer = self._consumer = self._open()
                    self._consume(consumer)
                    backoff = 0.5
                except Stopped:
                    break
                except Exception as exc:
                    # A fatal client error (or a bug): start over with a new client; the
                    # committed offsets say where, and the workflow IDs keep it exact.
                    self.log.error("%s failed: %s; reopening the consumer", self.name, exc)
                    self._close()
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF_SEC)
        finally:
            self._close()

    def _close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is None:
            return
        self._closing = True
        # Skipped while the brokers are unreachable (see _commit): what it misses is
        # delivered again later, and finds its workflow.
        try:
            self._commit(consumer, list(self._positions), asynchronous=False)
        except Exception as exc:
            self.log.debug("%s: final commit failed: %s", self.name, exc)
        try:
            # Leaves the group at once, so its partitions move to others without waiting
            # for the session to time out.
            consumer.close()
        except Exception as exc:
            self.log.debug("%s: close failed: %s", self.name, exc)
        self._positions.clear()
        self._committed.clear()
        self._paused = False
        self._fatal = None
        self._closing = False

    # -- the loop ------------------------------------------------------------------

    def _consume(self, consumer: Consumer) -> None:
        while not self._stopping():
            timeout, most = self._throttle(consumer)
            messages = consumer.consume(num_messages=most, timeout=timeout)
            if self._fatal is not None:
                from confluent_kafka import KafkaException

                raise KafkaException(self._fatal)
            if messages:
                self._handle(consumer, messages)
            else:
                self._idle(consumer)
            self._probe(consumer)

    def _throttle(self, consumer: Consumer) -> tuple[float, int]:
        """How long to poll and for how many messages: no more than free slots.

        With every slot taken the partitions stay paused: polling then delivers
        nothing but keeps the consumer in its group and runs its rebalances.
        """
        free = self.starter.free_slots()
        if free <= 0:
            # A partition assigned since the last pause starts unpaused, hence each turn.
            consumer.pause(consumer.assignment())
            self._paused = True
            self.starter.wait_for_slot(POLL_TIMEOUT_SEC)  # a finishing workflow wakes us
            free = self.starter.free_slots()
            if free <= 0:
                return 0, 1
        if self._paused:
            consumer.resume(consumer.assignment())
            self._paused = False
        return POLL_TIMEOUT_SEC, min(free, BATCH_SIZE)

    def _handle(self, consumer: Consumer, messages: list[Message]) -> None:
        """Store the messages' workflows in order, in batches; then commit past them."""
        touched: set[TopicKey] = set()
        batch: list[tuple[TopicKey, KafkaMessage]] = []

        def store_batch() -> None:
            if batch:
                self.starter.start_batch([message for _key, message in batch])
                for key, message in batch:
                    self._positions[key] = message.offset + 1
                    touched.add(key)
                batch.clear()

        try:
            for index, msg in enumerate(messages):
                if self._stopping():
                    raise Stopped
                key: TopicKey = (msg.topic() or "", msg.partition() or 0)
                err = msg.error()
                if err is not None:
                    store_batch()  # an offset is committed only after all before it
                    if self._message_error(msg, err):
                        self._positions[key] = (msg.offset() or 0) + 1
                        touched.add(key)
                    continue
                if len(batch) >= self.starter.free_slots():
                    store_batch()
                    if self.starter.free_slots() <= 0:
                        self._hold(consumer, messages[index:])
                        break
                batch.append((key, from_confluent(msg)))
            store_batch()
        finally:
            if touched and not self._stopping():
                self._commit(consumer, touched, asynchronous=True)

    def _hold(self, consumer: Consumer, rest: list[Message]) -> None:
        """Give back messages taken beyond the free slots: pause, then rewind to them."""
        from confluent_kafka import TopicPartition

        first: dict[TopicKey, int] = {}
        for msg in rest:
            offset = msg.offset()
            if msg.error() is None and offset is not None:
                key = (msg.topic() or "", msg.partition() or 0)
                first[key] = min(first.get(key, offset), offset)
        consumer.pause(consumer.assignment())
        self._paused = True
        for (topic, partition), offset in first.items():
            consumer.seek(TopicPartition(topic, partition, offset))

    def _probe(self, consumer: Consumer) -> None:
        """While the cluster is unreachable, ask it for metadata now and then.

        A message proves nothing (it may have been fetched before the outage); an
        answer, a commit or an assignment does.
        """
        now = time.monotonic()
        if self._unreachable and now - self._last_probe >= PROBE_INTERVAL_SEC:
            self._last_probe = now
            try:
                consumer.list_topics(timeout=1.0)
            except Exception:
                return
            self._reachable()

    def _idle(self, consumer: Consumer) -> None:
        now = time.monotonic()
        if now - self._last_commit_retry >= COMMIT_RETRY_SEC:
            self._last_commit_retry = now
            behind = [k for k, off in self._positions.items() if self._committed.get(k) != off]
            if behind:
                self._commit(consumer, behind, asynchronous=True)

    # -- errors and outages -----------------------------------------------------------

    def _message_error(self, msg: Message, err: KafkaError) -> bool:
        """Handle an error delivered in place of a message; True when it was skipped."""
        from confluent_kafka import KafkaError

        code = err.code()
        if code == KafkaError._PARTITION_EOF:
            return False
        offset = msg.offset()
        if code in self._bad_codes and msg.topic() and offset is not None and offset >= 0:
            placeholder = KafkaMessage(msg.topic() or "", msg.partition() or 0, offset, None, None)
            self.starter.reject(placeholder, f"unreadable message: {err.str()}")
            return True
        if err.fatal():
            self._fatal = err
            return False
        what = f"{code}:{msg.topic()}"
        if what not in self._reported:
            self._reported.add(what)
            self.log.warning("%s: %s", self.name, err.str())
        return False

    def _on_client_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._fatal = err
            return
        if not self._unreachable:
            self._unreachable = True
            self._last_probe = time.monotonic()
            self.log.warning(
                "%s: cannot reach the Kafka cluster (%s); retrying until it is back",
                self.name,
                err.str(),
            )

    def _reachable(self) -> None:
        if self._unreachable:
            self._unreachable = False
            self.log.info("%s: connected to the Kafka cluster again", self.name)
        self._reported.clear()

    # -- offsets and rebalances ---------------------------------------------------------

    def _commit(self, consumer: Consumer, keys: Any, *, asynchronous: bool) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        if self._unreachable:
            # A commit the brokers cannot answer waits for the group coordinator, and
            # close() then waits for it, up to the session timeout.
            return
        offsets = [
            TopicPartition(topic, partition, self._positions[(topic, partition)])
            for topic, partition in keys
            if (topic, partition) in self._positions
        ]
        if not offsets:
            return
        try:
            if asynchronous:
                consumer.commit(offsets=offsets, asynchronous=True)
            else:
                self._on_commit(None, consumer.commit(offsets=offsets, asynchronous=False))
        except KafkaException as exc:
            # Not committed now (a rebalance, an outage): committed later or redelivered,
            # and a redelivered message finds its workflow.
            self.log.debug("%s: commit failed: %s", self.name, exc)

    def _on_commit(self, err: KafkaError | None, partitions: list[TopicPartition]) -> None:
        if err is not None:
            self.log.debug("%s: commit failed: %s", self.name, err.str())
            if err.code() in self._outage_codes:
                self._on_client_error(err)
            return
        self._reachable()
        for tp in partitions:
            if tp.error is None and tp.offset >= 0:
                key = (tp.topic, tp.partition)
                self._committed[key] = max(self._committed.get(key, -1), tp.offset)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._reachable()
        self.log.info(
            "%s: assigned %s",
            self.name,
            ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing",
        )

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Everything taken so far is started: commit it as the partitions go (close()
        # has just done so). Not waited for: one that misses only means a redelivery.
        keys = [(tp.topic, tp.partition) for tp in partitions]
        if not self._closing:
            self._commit(consumer, keys, asynchronous=True)
        self._forget(keys)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._forget([(tp.topic, tp.partition) for tp in partitions])

    def _forget(self, keys: list[TopicKey]) -> None:
        for key in keys:
            self._positions.pop(key, None)
            self._committed.pop(key, None)
