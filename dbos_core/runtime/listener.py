"""One LISTEN connection per process turns PostgreSQL NOTIFY into local wake-ups."""

from __future__ import annotations

import logging
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
        self._thread = threading.Thread(target=self._run, name="dbos-listener", daemon=True)

    def start(self, wait_ready: float = 5.0) -> None:
        self._thread.start()
        # Waiters that start right after launch should not miss an early notification.
        self._ready.wait(wait_ready)

    def stop(self) -> None:
        self._stop.set()
        conn = self._conn
        if conn is not None:
            try:
                conn.cancel_safe(timeout=1.0)
            except Exception:
                pass
        self._thread.join(timeout=5.0)

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
                        for note in conn.notifies(timeout=1.0):
                            self._notifier.notify(note.payload)
            except Exception as exc:
                self._conn = None
                if self._stop.is_set():
                    return
                logger.warning("LISTEN connection lost (%s); reconnecting", exc)
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)
        self._conn = None
