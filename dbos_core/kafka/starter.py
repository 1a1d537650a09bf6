"""Turning a batch of messages into stored workflows: one transaction for the batch.

Each message goes through the ordinary start of a workflow (``start_protocol``: its
ID, its serialized input, enqueueing for ``in_order``) up to the point where that
would INSERT the row. There the protocol is held, the rows of the whole batch are
inserted in one transaction, and each protocol is resumed with its own outcome: created
(then its workflow is dispatched), or already there (a redelivery: nothing to do). One
commit per batch instead of one per message is what lets a consumer keep up with a
topic while every offset it commits stays behind a durable row.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..error import DBOSConflictingWorkflowError, DBOSSerializationError
from ..runtime import context as ctx
from ..runtime.effects import Blocking, Protocol, run_sync
from ..runtime.runtime import DBOSDestroyedError, Runtime
from ..runtime.workflows import Mode, QueueRequest, Started, dispatch, start_protocol
from .message import KafkaMessage, kafka_workflow_id, partition_key
from .spec import KafkaConsumerSpec

if TYPE_CHECKING:
    import logging

    from ..storage.workflows import ChildLink, NewWorkflow

MAX_BACKOFF_SEC = 5.0
# With in_order the queue bounds what runs; the consumer takes batches of this size.
UNBOUNDED_SLOTS = 500


class Stopped(Exception):
    """The runtime is stopping: leave without committing what did not start."""


@dataclass
class _Held:
    message: KafkaMessage
    protocol: Protocol[Started]
    row: NewWorkflow


def _perform(effect: Any) -> Any:
    if not isinstance(effect, Blocking):
        raise RuntimeError(f"unexpected {type(effect).__name__} while starting a workflow")
    return effect.fn()


def _resume(protocol: Protocol[Started], value: Any) -> Started:
    try:
        effect = protocol.send(value)
        while True:
            effect = protocol.send(_perform(effect))
    except StopIteration as stop:
        result: Started = stop.value
        return result


class WorkflowStarter:
    """Stores and dispatches the workflows of one consumer, at most max_concurrency."""

    def __init__(
        self,
        rt: Runtime,
        spec: KafkaConsumerSpec,
        log: logging.Logger,
        stop: threading.Event,
    ) -> None:
        self.rt = rt
        self.spec = spec
        self.log = log
        self.name = spec.description
        self._stop = stop
        self._slots = threading.Condition()
        self._in_flight = 0

    def stopping(self) -> bool:
        return self._stop.is_set() or self.rt.stopped

    # -- slots ---------------------------------------------------------------------

    def free_slots(self) -> int:
        if self.spec.in_order:
            return UNBOUNDED_SLOTS
        with self._slots:
            return self.spec.max_concurrency - self._in_flight

    def wait_for_slot(self, timeout: float) -> None:
        with self._slots:
            if self._in_flight >= self.spec.max_concurrency and not self.stopping():
                self._slots.wait(timeout)

    def wake(self) -> None:
        with self._slots:
            self._slots.notify_all()

    @property
    def in_flight(self) -> int:
        with self._slots:
            return self._in_flight

    def _release(self) -> None:
        with self._slots:
            self._in_flight -= 1
            self._slots.notify_all()

    # -- starting --------------------------------------------------------------------

    def start_batch(self, messages: list[KafkaMessage]) -> None:
        """When this returns, every message has its workflow row (or a rejection record)."""
        spec = self.spec
        held: list[_Held] = []
        try:
            for message in messages:
                if spec.max_message_bytes is not None and message.size > spec.max_message_bytes:
                    limit = spec.max_message_bytes
                    self.reject(message, f"{message.size} bytes exceeds max_message_bytes={limit}")
                    continue
                try:
                    held.append(self._hold(message))
                except DBOSSerializationError as exc:
                    self.reject(message, f"cannot be stored as the workflow's input: {exc}")
            if not held:
                return
            rows = self._until_stored(
                lambda: self.rt.sysdb.workflows.insert_many([h.row for h in held]),
                held[0].message,
            )
            for h in held:
                existing = rows.get(h.row.workflow_id)
                try:
                    started = _resume(h.protocol, (existing is None, existing))
                except DBOSConflictingWorkflowError as exc:
                    # Another workflow of this group (another function) took this message.
                    self.log.debug("%s: %s; not started again", self.name, exc)
                    continue
                if started.created and started.state is not None:
                    self._dispatch(started)
        finally:
            for h in held:
                h.protocol.close()

    def _hold(self, message: KafkaMessage) -> _Held:
        """Run the start of the message's workflow up to its INSERT, and keep it there."""
        spec = self.spec
        rows: list[NewWorkflow] = []

        def capture(row: NewWorkflow, _link: ChildLink | None) -> tuple[bool, Any]:
            rows.append(row)
            return False, None  # never seen: the protocol is resumed with the real outcome

        request = None
        if spec.queue_name is not None:
            # One at a time per group, topic and partition, across all processes.
            key = partition_key(spec.group_id, message.topic, message.partition)
            request = QueueRequest(spec.queue_name, partition_key=key)
        workflow_id = kafka_workflow_id(
            spec.group_id, message.topic, message.partition, message.offset
        )
        mode: Mode = "enqueue" if request is not None else "start"
        token = ctx.assigned_id.set(ctx.IdAssignment(workflow_id))
        try:
            protocol = start_protocol(spec.reg, (message,), {}, mode, request, insert=capture)
            effect = next(protocol)
            while True:
                value = _perform(effect)
                if rows:
                    return _Held(message, protocol, rows[0])
                effect = protocol.send(value)
        except (DBOSSerializationError, Stopped):
            raise
        except Exception:
            if self.stopping():
                raise Stopped from None
            raise
        finally:
            ctx.assigned_id.reset(token)

    def _dispatch(self, started: Started) -> None:
        assert started.state is not None
        with self._slots:
            self._in_flight += 1
        try:
            future = dispatch(
                self.rt, self.spec.reg, started.state, started.call_args, started.call_kwargs
            )
        except DBOSDestroyedError:
            # The row exists, so the message counts as started: recovery runs it later.
            self._release()
            return
        except BaseException:
            self._release()
            raise
        future.add_done_callback(lambda _future: self._release())

    def _until_stored(self, write: Callable[[], Any], message: KafkaMessage) -> Any:
        """Run ``write`` until it succeeds: while the database is down the consumer stays
        at this message (nothing past it is committed), logged once per outage."""
        failing = False
        backoff = 0.1
        while True:
            if self.stopping():
                raise Stopped
            try:
                result = write()
            except (DBOSSerializationError, DBOSConflictingWorkflowError):
                raise
            except DBOSDestroyedError:
                raise Stopped from None
            except Exception as exc:
                if self.stopping():
                    raise Stopped from None
                if not failing:
                    failing = True
                    self.log.warning(
                        "%s: cannot store the workflow of %s[%d]@%d: %s; retrying",
                        self.name,
                        message.topic,
                        message.partition,
                        message.offset,
                        exc,
                    )
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SEC)
                continue
            if failing:
                self.log.info("%s: storing workflows works again", self.name)
            return result

    # -- messages that cannot become workflows ---------------------------------------------

    def reject(self, message: KafkaMessage, reason: str) -> None:
        """Skip a message that cannot become a workflow, recording why.

        The record is a workflow under the message's own ID (function
        ``dbos.kafka.rejected_message``, status ERROR, the reason as its error), so it
        is listed with the other workflows and a redelivery finds it and stops there.
        """
        from .service import rejected_message_registration

        spec = self.spec
        workflow_id = kafka_workflow_id(
            spec.group_id, message.topic, message.partition, message.offset
        )
        self.log.warning(
            "%s: skipped message %s[%d]@%d: %s (recorded as workflow %s)",
            self.name,
            message.topic,
            message.partition,
            message.offset,
            reason,
            workflow_id,
        )
        details = {
            "workflow": spec.reg.name,
            "group": spec.group_id,
            "topic": message.topic,
            "partition": message.partition,
            "offset": message.offset,
            "size": message.size,
            "reason": reason,
        }
        reg = rejected_message_registration()

        def record() -> None:
            token = ctx.assigned_id.set(ctx.IdAssignment(workflow_id))
            try:
                started = run_sync(start_protocol(reg, (details,), {}, "start"))
            finally:
                ctx.assigned_id.reset(token)
            if started.created and started.state is not None:
                try:
                    dispatch(self.rt, reg, started.state, started.call_args, started.call_kwargs)
                except DBOSDestroyedError:
                    pass  # recovery finishes the record

        try:
            self._until_stored(record, message)
        except (DBOSSerializationError, DBOSConflictingWorkflowError) as exc:
            self.log.error("%s: could not record the skipped message: %s", self.name, exc)
