"""Cancelling workflows on time and across processes.

``CancellationWatch`` is a runtime service with one thread. It keeps a heap of the
deadlines of the workflows executing in this process and, when one passes, marks
the workflow and all its descendants CANCELLED in the database (so a workflow
stuck in a long step or wait is cancelled on time, not at its next step), sets
their local cancel flags and wakes their waits.

On PostgreSQL it also watches the ``wf:<id>`` notifications of those workflows: a
cancel made by another process changes the status, the trigger NOTIFYs, and the
local execution is flagged at once instead of at its next checkpoint.
"""

from __future__ import annotations

import heapq
import itertools
import queue
import threading
import time

from .context import WorkflowState
from .notifier import Waiter, cancel_key, workflow_key
from .runtime import Runtime, service_factories

# Size of the deadline heap above which entries of finished workflows are pruned.
_PRUNE_AT = 1024


class _StatusWaiter(Waiter):
    """Woken by ``wf:<id>``: hands the workflow to the watch thread to check its status."""

    __slots__ = ("_inbox", "_state")

    def __init__(self, state: WorkflowState, inbox: queue.SimpleQueue[WorkflowState]) -> None:
        super().__init__((workflow_key(state.workflow_id),))
        self._state = state
        self._inbox = inbox

    def wake(self) -> None:
        self._inbox.put(self._state)


class CancellationWatch:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._lock = threading.Condition()
        self._heap: list[tuple[int, int, WorkflowState]] = []
        self._order = itertools.count()
        self._stopping = False
        self._remote = not rt.sysdb.is_sqlite
        self._inbox: queue.SimpleQueue[WorkflowState] = queue.SimpleQueue()
        self._status_waiters: dict[str, _StatusWaiter] = {}
        self._waiters_lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    # -- service -----------------------------------------------------------------

    def start(self) -> None:
        self.rt.claim_hooks.append(self.watch)
        deadlines = threading.Thread(target=self._run_deadlines, name="dbos-deadlines", daemon=True)
        self._threads.append(deadlines)
        if self._remote:
            remote = threading.Thread(
                target=self._run_remote, name="dbos-remote-cancel", daemon=True
            )
            self._threads.append(remote)
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        if self._remote:
            self._inbox.put(_STOP)
        for thread in self._threads:
            thread.join(timeout=5)
        with self._waiters_lock:
            waiters = list(self._status_waiters.values())
            self._status_waiters.clear()
        for waiter in waiters:
            self.rt.notifier.unsubscribe(waiter)

    # -- a workflow begins executing here ----------------------------------------

    def watch(self, state: WorkflowState) -> None:
        if state.deadline_ms is not None:
            with self._lock:
                if len(self._heap) >= _PRUNE_AT and len(self._heap) > 2 * len(self.rt.active):
                    # Workflows that finished long before their deadline: drop them.
                    self._heap = [
                        e for e in self._heap if self.rt.active.get(e[2].workflow_id) is e[2]
                    ]
                    heapq.heapify(self._heap)
                heapq.heappush(self._heap, (state.deadline_ms, next(self._order), state))
                self._lock.notify_all()
        if self._remote:
            waiter = _StatusWaiter(state, self._inbox)
            with self._waiters_lock:
                previous = self._status_waiters.pop(state.workflow_id, None)
                self._status_waiters[state.workflow_id] = waiter
            if previous is not None:
                self.rt.notifier.unsubscribe(previous)
            self.rt.notifier.add(waiter)
            # A cancel that landed before this execution subscribed is found by one check.
            self._inbox.put(state)

    # -- deadlines ------------------------------------------------------------------

    def _run_deadlines(self) -> None:
        while True:
            with self._lock:
                while not self._stopping:
                    now_ms = int(time.time() * 1000)
                    if self._heap and self._heap[0][0] <= now_ms:
                        break
                    timeout = None if not self._heap else (self._heap[0][0] - now_ms) / 1000
                    self._lock.wait(timeout)
                if self._stopping:
                    return
                _deadline, _n, state = heapq.heappop(self._heap)
            self._expire(state)

    def _expire(self, state: WorkflowState) -> None:
        from .management import cancel_in_storage

        # Only the execution that registered this deadline: a resumed workflow has a new one.
        if self.rt.active.get(state.workflow_id) is not state:
            return
        try:
            cancel_in_storage(self.rt, state.workflow_id, with_descendants=True)
        except Exception as exc:
            if not self.rt.stopped:
                self.rt.logger.warning(
                    "Could not cancel timed-out workflow %s: %s", state.workflow_id, exc
                )
        state.cancelled.set()
        self.rt.notifier.notify(cancel_key(state.workflow_id))

    # -- cancels from other processes (PostgreSQL) -------------------------------------

    def _run_remote(self) -> None:
        while True:
            batch = [self._inbox.get()]
            # Under load many workflows change at once: check them in one query.
            while len(batch) < 200:
                try:
                    batch.append(self._inbox.get_nowait())
                except queue.Empty:
                    break
            if self._stopping or any(state is _STOP for state in batch):
                return
            running: dict[str, WorkflowState] = {}
            for state in batch:
                if self.rt.active.get(state.workflow_id) is state:
                    if not state.cancelled.is_set():
                        running[state.workflow_id] = state
                else:
                    self._forget(state)
            if not running:
                continue
            try:
                cancelled = self.rt.sysdb.workflows.cancelled_among(list(running))
            except Exception:
                continue  # shutting down, or the database is away: the next step notices
            for wid in cancelled:
                running[wid].cancelled.set()
                self.rt.notifier.notify(cancel_key(wid))

    def _forget(self, state: WorkflowState) -> None:
        """The execution ended: drop its status subscription."""
        with self._waiters_lock:
            waiter = self._status_waiters.get(state.workflow_id)
            if waiter is None or waiter._state is not state:
                return
            del self._status_waiters[state.workflow_id]
        self.rt.notifier.unsubscribe(waiter)


_STOP = WorkflowState(workflow_id="", name="")

service_factories.append(CancellationWatch)
