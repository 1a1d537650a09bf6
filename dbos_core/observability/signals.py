"""Process-wide signals from the layers below the runtime to observability.

The storage layer cannot see the runtime (imports go downward only), yet operators
want to know when the database made us retry or went away. Code that retries a
database call reports it here; the metrics of each running DBOS subscribe while
they run. With nobody subscribed a signal costs one empty loop.
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol


class DatabaseObserver(Protocol):
    def database_retry(self, database: str) -> None: ...

    def database_outage(self, database: str, started: bool) -> None: ...


_lock = threading.Lock()
_observers: tuple[DatabaseObserver, ...] = ()


def subscribe(observer: DatabaseObserver) -> None:
    global _observers
    with _lock:
        _observers = (*_observers, observer)


def unsubscribe(observer: DatabaseObserver) -> None:
    global _observers
    with _lock:
        _observers = tuple(o for o in _observers if o is not observer)


def database_retry(database: str) -> None:
    """A call to ``database`` ("system" or "application") failed transiently and is retried."""
    for observer in _observers:
        try:
            observer.database_retry(database)
        except Exception as exc:  # observability must never break the caller
            logging.getLogger("dbos").debug("database_retry observer failed: %s", exc)


def database_outage(database: str, started: bool) -> None:
    """``database`` became unreachable (``started``) or reachable again."""
    for observer in _observers:
        try:
            observer.database_outage(database, started)
        except Exception as exc:
            logging.getLogger("dbos").debug("database_outage observer failed: %s", exc)
