"""A bounded pool of daemon threads for workflow bodies.

The standard ``ThreadPoolExecutor`` joins its threads at interpreter exit, so one
workflow blocked in user code would keep a finished program alive. Workflows are
durable, so a process may simply end: this pool's threads are daemons, and whatever
they were running is recovered at the next launch.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")
_STOP: Any = object()


class DaemonThreadPool:
    def __init__(self, max_workers: int, name: str) -> None:
        self._max = max_workers
        self._name = name
        self._tasks: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0
        self._shutdown = False

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new work after shutdown")
            self._tasks.put((future, fn, args))
            # Start a thread only when none is idle, up to the bound.
            if self._idle == 0 and self._threads < self._max:
                self._threads += 1
                threading.Thread(
                    target=self._work, name=f"{self._name}-{self._threads}", daemon=True
                ).start()
            else:
                self._idle = max(0, self._idle - 1)
        return future

    def _work(self) -> None:
        while True:
            item = self._tasks.get()
            if item is _STOP:
                return
            future, fn, args = item
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args)
                except BaseException as exc:
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            with self._lock:
                if self._shutdown:
                    self._threads -= 1
                    return
                self._idle += 1

    def shutdown(self) -> None:
        """Refuse new work and let idle threads end; running work is not waited for."""
        with self._lock:
            self._shutdown = True
            count = self._threads
        for _ in range(count):
            self._tasks.put(_STOP)
