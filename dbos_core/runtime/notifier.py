"""In-process wake-ups: a write in this process wakes its local waiters at once.

Keys name what changed (``wf:<id>``, ``msg:<id>::<topic>``, ...). The PostgreSQL
listener feeds the same keys from NOTIFY, so waiters never care where a change
came from. A waiter subscribes *before* it reads the database, so a change that
lands between the read and the wait still wakes it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable


def workflow_key(workflow_id: str) -> str:
    return f"wf:{workflow_id}"


def cancel_key(workflow_id: str) -> str:
    return f"cancel:{workflow_id}"


def message_key(destination_id: str, topic: str) -> str:
    return f"msg:{destination_id}::{topic}"


def event_key(workflow_id: str, key: str) -> str:
    return f"evt:{workflow_id}::{key}"


def stream_key(workflow_id: str, key: str) -> str:
    return f"stream:{workflow_id}::{key}"


def queue_key(queue_name: str) -> str:
    return f"queue:{queue_name}"


class Waiter:
    """Woken by any of its keys; usable from threads and from event loops."""

    __slots__ = ("_event", "_futures", "_lock", "keys")

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.keys = keys
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._futures: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def wake(self) -> None:
        with self._lock:
            self._event.set()
            futures, self._futures = self._futures, []
        for loop, fut in futures:
            try:
                loop.call_soon_threadsafe(_resolve, fut)
            except RuntimeError:
                pass  # that loop is closed; nobody waits there any more

    def clear(self) -> None:
        self._event.clear()

    def wait(self, timeout: float | None) -> bool:
        """Block until woken or ``timeout``; True if woken. Clears the wake-up."""
        woken = self._event.wait(timeout)
        self._event.clear()
        return woken

    async def wait_async(self, timeout: float | None) -> bool:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._event.is_set():
                self._event.clear()
                return True
            self._futures.append((loop, fut))
        try:
            await asyncio.wait_for(fut, timeout)
            woken = True
        except TimeoutError:
            woken = False
        with self._lock:
            self._futures = [(lp, f) for lp, f in self._futures if f is not fut]
            self._event.clear()
        return woken


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class Notifier:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[Waiter]] = {}

    def subscribe(self, keys: Iterable[str]) -> Waiter:
        return self.add(Waiter(tuple(keys)))

    def add(self, waiter: Waiter) -> Waiter:
        """Subscribe a waiter built by the caller (a subclass may act on ``wake``)."""
        with self._lock:
            for key in waiter.keys:
                self._waiters.setdefault(key, set()).add(waiter)
        return waiter

    def unsubscribe(self, waiter: Waiter) -> None:
        with self._lock:
            for key in waiter.keys:
                group = self._waiters.get(key)
                if group is not None:
                    group.discard(waiter)
                    if not group:
                        del self._waiters[key]

    def notify(self, key: str) -> None:
        with self._lock:
            group = list(self._waiters.get(key, ()))
        for waiter in group:
            waiter.wake()

    def notify_prefix(self, prefix: str) -> None:
        with self._lock:
            group = [w for k, ws in self._waiters.items() if k.startswith(prefix) for w in ws]
        for waiter in group:
            waiter.wake()

    def notify_all(self) -> None:
        """Wake everyone to re-read the database (after a lost LISTEN connection)."""
        with self._lock:
            group = [w for ws in self._waiters.values() for w in ws]
        for waiter in group:
            waiter.wake()

    def has_waiters(self, key: str) -> bool:
        with self._lock:
            return key in self._waiters
