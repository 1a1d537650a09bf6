"""The queue dispatcher: one thread per process that starts queued workflows.

It sleeps until something can change what it may start: an enqueue or a
completion in this process (in-process notifier, key ``queue:<name>``), a change
in another process (PostgreSQL NOTIFY from the ``workflow_status`` trigger, fed
into the same keys by the listener), or the rate limiter's next free slot.
Polling is only the fallback (SQLite shared by several processes, a lost LISTEN
connection). Each wake-up claims what the limits allow (see ``storage.queues``)
and hands the claimed workflows to the workflow pool or the event loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..observability import signals
from ..queue_limits import QueueLimits
from .notifier import Waiter, queue_key
from .registry import registry
from .runtime import DBOSDestroyedError, Runtime, Service, service_factories

if TYPE_CHECKING:
    from ..storage.workflows import AnyRow

# Woken when a queue is declared after launch, so the dispatcher starts watching it.
REGISTRY_KEY = "queue-registry"
# How long the dispatcher waits without any notification on PostgreSQL, where
# NOTIFY carries every cross-process change; a safety net only. Queues lower (or
# raise) it with polling_interval_sec.
PG_FALLBACK_POLL_SEC = 1.0
# Longest pause between attempts while the database keeps failing.
MAX_BACKOFF_SEC = 5.0


class QueueRegistry:
    """Queues declared in this process (``Queue(...)`` registers itself here)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, QueueLimits] = {}
        self.version = 0

    def register(self, limits: QueueLimits) -> None:
        with self._lock:
            self._queues[limits.name] = limits
            self.version += 1
        from .global_state import peek_runtime

        rt = peek_runtime()
        if rt is not None:
            rt.notifier.notify(REGISTRY_KEY)

    def get(self, name: str) -> QueueLimits | None:
        with self._lock:
            return self._queues.get(name)

    def all(self) -> list[QueueLimits]:
        with self._lock:
            return list(self._queues.values())


queue_registry = QueueRegistry()

# Timers other parts hook into the dispatcher loop (the debouncer fires due workflows).
# Each returns the epoch seconds at which it wants to run again, or None.
dispatcher_timers: list[Callable[[Runtime], float | None]] = []


class QueueDispatcher:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._stop = threading.Event()
        self._lock = threading.Lock()
        # Workflows this dispatcher started that have not finished, per queue.
        self._running: dict[str, set[str]] = {}
        self._waiter: Waiter | None = None
        # When the timers (debouncer) next want to run, epoch seconds, or at once if kicked.
        self._timers_due = 0.0
        self._timers_kicked = False
        self._names: list[str] | None = None
        # Queues on which we claimed a workflow whose function is not registered here.
        self._foreign: set[str] = set()
        self._names_from = 0
        self._failing = False
        self._backoff = 0.0
        self._thread = threading.Thread(target=self._run, name="dbos-queue-dispatcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        waiter = self._waiter
        if waiter is not None:
            waiter.wake()
        self._thread.join(timeout=5.0)

    # -- the loop ---------------------------------------------------------------

    def _fallback_poll(self) -> float:
        if self.rt.sysdb.is_sqlite:
            return self.rt.poll_interval
        intervals = [q.polling_interval_sec for q in queue_registry.all()]
        return min(intervals) if intervals else PG_FALLBACK_POLL_SEC

    def _run(self) -> None:
        rt = self.rt
        seen_version = -1
        waiter: Waiter | None = None
        woken = True
        try:
            while not self._stop.is_set() and not rt.stopped:
                if seen_version != queue_registry.version or waiter is None:
                    # Subscribe before reading the database, so no enqueue slips by.
                    seen_version = queue_registry.version
                    keys = [REGISTRY_KEY] + [queue_key(q.name) for q in queue_registry.all()]
                    if waiter is not None:
                        rt.notifier.unsubscribe(waiter)
                    waiter = rt.notifier.subscribe(keys)
                    self._waiter = waiter
                now = time.time()
                wake_at = now + self._fallback_poll()
                failed = False
                for limits in queue_registry.all():
                    if self._stop.is_set():
                        break
                    try:
                        retry_at = self._dispatch_queue(limits, polling=not woken)
                    except DBOSDestroyedError:
                        return
                    except Exception as exc:
                        if not self._failing:
                            rt.logger.warning("Queue %s: dispatch failed: %s", limits.name, exc)
                        failed = True
                        retry_at = None
                    if retry_at is not None:
                        wake_at = min(wake_at, retry_at)
                if failed:
                    # The database is unreachable or refusing: back off, log once per outage.
                    if not self._failing:
                        signals.database_outage("system", started=True)
                    self._failing = True
                    self._backoff = min(max(self._backoff * 2, 0.1), MAX_BACKOFF_SEC)
                    wake_at = max(wake_at, now + self._backoff)
                elif self._failing:
                    rt.logger.info("Queue dispatch works again")
                    signals.database_outage("system", started=False)
                    self._failing, self._backoff = False, 0.0
                if self._timers_kicked or now >= self._timers_due:
                    self._timers_kicked = False  # a kick during the run triggers another
                    self._run_timers(now)
                wake_at = min(wake_at, self._timers_due)
                if self._timers_kicked:
                    wake_at = now
                woken = waiter.wait(max(0.0, wake_at - time.time()))
        finally:
            if waiter is not None:
                rt.notifier.unsubscribe(waiter)

    def _run_timers(self, now: float) -> None:
        due = now + self._fallback_poll()
        for timer in list(dispatcher_timers):
            try:
                again = timer(self.rt)
            except Exception as exc:
                self.rt.logger.warning("Queue timer failed: %s", exc)
                again = None
            if again is not None:
                due = min(due, again)
        self._timers_due = due

    def wake_timers(self) -> None:
        """Run the timers at the next loop turn (a new debounce deadline, for one)."""
        self._timers_kicked = True
        waiter = self._waiter
        if waiter is not None:
            waiter.wake()

    def _workflow_names(self) -> list[str]:
        size = len(registry.functions)
        if self._names is None or size != self._names_from:
            # Cheap check: the registry only grows while a process runs.
            self._names = [r.name for r in registry.workflows()]
            self._names_from = size
        return self._names

    def _local_free(self, limits: QueueLimits) -> int | None:
        # Partitioned queues apply worker_concurrency per partition: the claim decides.
        if limits.worker_concurrency is None or limits.partitioned:
            return None
        with self._lock:
            running = len(self._running.get(limits.name, ()))
        return limits.worker_concurrency - running

    def _dispatch_queue(self, limits: QueueLimits, polling: bool = False) -> float | None:
        """Claim and start what the queue allows; returns when the limiter frees a slot.

        ``polling``: no notification came, so most queues have nothing new; a plain
        read checks that first (a claim takes SQLite's write lock even when idle).
        """
        local_free = self._local_free(limits)
        if local_free is not None and local_free <= 0:
            return None  # our slots are full; a completion here will wake us
        sysdb = self.rt.sysdb
        if polling and not sysdb.queues.has_enqueued(limits.name):
            return None
        partitions: list[str | None] = (
            sysdb.queues.partitions(limits.name) if limits.partitioned else [None]
        )
        retry_at: float | None = None
        for partition in partitions:
            result = sysdb.queues.claim(
                limits,
                self.rt.executor_id,
                self.rt.app_version,
                partition_key=partition,
                owner=self.rt.instance_id,
                local_free=self._local_free(limits),
                # Filter by name only where foreign work showed up: it costs CPU per claim.
                workflow_names=self._workflow_names() if limits.name in self._foreign else None,
            )
            if result.retry_at_ms is not None:
                at = result.retry_at_ms / 1000
                retry_at = at if retry_at is None else min(retry_at, at)
            if result.rows:
                self._start_claimed(limits.name, result.rows)
        return retry_at

    def _start_claimed(self, queue_name: str, rows: list[AnyRow]) -> None:
        from .workflows import dispatch, load_call, state_from_row

        rt = self.rt
        # A workflow dequeued for the first time has no checkpoints to read; one that
        # ran before (or was forked with copied steps) needs them for its replay.
        steps = rt.sysdb.queues.load_steps(
            [
                r._mapping["workflow_uuid"]
                for r in rows
                if r._mapping["recovery_attempts"] > 1 or r._mapping["forked_from"] is not None
            ]
        )
        for row in rows:
            m = row._mapping
            workflow_id = m["workflow_uuid"]
            reg = registry.get(m["name"])
            if reg is None or reg.kind != "workflow":
                # Not ours to run (an enqueue-only process, another service): hand it
                # back, and from now on claim only what this process can run.
                rt.logger.debug(
                    "Queue %s: workflow %s needs function %r, not registered here; released",
                    queue_name,
                    workflow_id,
                    m["name"],
                )
                rt.sysdb.queues.release(workflow_id, rt.executor_id)
                self._foreign.add(queue_name)
                rt.notifier.notify(queue_key(queue_name))
                continue
            try:
                args, kwargs = load_call(rt, reg, m)
            except Exception as exc:
                self._fail(workflow_id, exc)
                continue
            state = state_from_row(rt, m, steps.get(workflow_id, {}))
            rt.telemetry.dequeued(queue_name, m["created_at"])
            with self._lock:
                self._running.setdefault(queue_name, set()).add(workflow_id)
            try:
                future = dispatch(rt, reg, state, args, kwargs)
            except BaseException:
                self._finished(queue_name, workflow_id)
                raise
            future.add_done_callback(self._on_done(queue_name, workflow_id))

    def _on_done(self, queue_name: str, workflow_id: str) -> Callable[[object], None]:
        def done(_future: object) -> None:
            self._finished(queue_name, workflow_id)

        return done

    def _finished(self, queue_name: str, workflow_id: str) -> None:
        with self._lock:
            running = self._running.get(queue_name)
            if running is not None:
                running.discard(workflow_id)
        self.rt.notifier.notify(queue_key(queue_name))

    def _fail(self, workflow_id: str, exc: Exception) -> None:
        from ..serialization import serialize_error
        from .notifier import workflow_key

        self.rt.logger.error("Queued workflow %s cannot start: %s", workflow_id, exc)
        text = serialize_error(self.rt.serializer, exc)
        self.rt.sysdb.workflows.finish(workflow_id, "ERROR", None, text)
        self.rt.notifier.notify(workflow_key(workflow_id))


def _make_dispatcher(rt: Runtime) -> Service | None:
    return QueueDispatcher(rt)


def dispatcher_of(rt: Runtime) -> QueueDispatcher | None:
    for service in rt.services:
        if isinstance(service, QueueDispatcher):
            return service
    return None


service_factories.append(_make_dispatcher)
