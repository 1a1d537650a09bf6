"""One LISTEN connection per process turns PostgreSQL NOTIFY into local wake-ups."""

from __future__ import annotations

import logging
import os
import select
import threading
from typing import Any

from .notifier import Notifier

logger = logging.getLogger("dbos")


class PostgresListener:
    def __init__(self, conninfo: str, channel: str, notifier: Notifier) -> None:
        self._conninfo = conninfo
        self._channel = channel
        self._notifier = notifier
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._conn: Any = None
        # Writing to this pipe interrupts the select() of the listening thread at once.
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name="dbos-listener", daemon=True)

    def start(self, wait_ready: float = 5.0) -> None:
        self._thread.start()
        # Waiters that start right after launch should not miss an early notification.
        self._ready.wait(wait_ready)

    def stop(self) -> None:
        self._stop.set()
        os.write(self._wake_w, b"x")
        self._thread.join(timeout=5.0)
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _run(self) -> None:
        import psycopg

        delay = 0.1
        first = True
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as conn:
                    self._conn = conn
                    conn.execute(f'LISTEN "{self._channel}"')
                    self._ready.set()
                    if not first:
                        # Anything may have happened while we were deaf: re-check all.
                        self._notifier.notify_all()
                    first = False
                    delay = 0.1
                    while not self._stop.is_set():
                        readable, _, _ = select.select([conn.fileno(), self._wake_r], [], [], 30.0)
                        if self._wake_r in readable:
                            break
                        for note in conn.notifies(timeout=0):
                            self._notifier.notify(note.payload)
            except Exception as exc:
                self._conn = None
                if self._stop.is_set():
                    return
                logger.warning("LISTEN connection lost (%s); reconnecting", exc)
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)
        self._conn = None
