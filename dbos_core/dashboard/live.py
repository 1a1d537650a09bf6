"""Live pages: server-sent events woken by the runtime's notifier.

A stream subscribes to the notifier keys of what its page shows (``wf:<id>`` and
``cancel:<id>`` of each row, or of the one workflow). A change made in this process
wakes it at once; on PostgreSQL so does a change made by any other process
(LISTEN/NOTIFY feeds the same keys). Changes that publish no key (a step completing,
a claim, any change by another process on SQLite) are seen at the next re-check,
every ``recheck_seconds``: one short indexed read per open page, on the server.
The browser never polls; it only keeps the EventSource open.

Each wake-up re-reads the page's rows, renders them as the page does, and sends
only the pieces whose HTML changed. The loop is written once (``LiveStream``);
``iter_sync`` and ``iter_async`` drive it from a thread or an event loop.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Protocol

from ..runtime.notifier import Waiter, cancel_key, workflow_key
from ..storage import dashboard as queries
from .html import Markup

if TYPE_CHECKING:
    from ..runtime.runtime import Runtime
    from .context import Page

# A comment line every so often keeps proxies from closing an idle stream and tells
# the server when the browser went away.
HEARTBEAT_SECONDS = 15.0
# A stream ends after this long; the browser reconnects by itself (``retry``).
MAX_STREAM_SECONDS = 600.0
# Re-read what the page shows at least this often (see the module's docstring).
MIN_RECHECK_SECONDS = 1.0
RECONNECT_MS = 2000


def sse_event(name: str, payload: object) -> bytes:
    return f"event: {name}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


class Feed(Protocol):
    def keys(self) -> list[str]: ...

    def check(self) -> list[bytes]:
        """Events for what changed since the last check (everything, the first time)."""
        ...


class ListFeed:
    """The rows of one page of the list, and (on the first page) newer arrivals."""

    def __init__(
        self,
        page: Page,
        workflow_ids: list[str],
        query: queries.WorkflowQuery,
        newest: queries.Cursor | None,
    ) -> None:
        self.page = page
        self.workflow_ids = workflow_ids
        self.query = query
        self.newest = newest
        self._sent: dict[str, str] = {}
        self._newer = -1

    def keys(self) -> list[str]:
        return [k for wid in self.workflow_ids for k in (workflow_key(wid), cancel_key(wid))]

    def check(self) -> list[bytes]:
        from .workflow_list import list_row

        db = self.page.rt.sysdb.db
        changed: list[list[str]] = []
        for row in queries.rows_by_id(db, self.workflow_ids):
            html = list_row(self.page, row)
            workflow_id = row._mapping["workflow_uuid"]
            if self._sent.get(workflow_id) != html:
                self._sent[workflow_id] = html
                changed.append([workflow_id, str(html)])
        events = [sse_event("rows", changed)] if changed else []
        if self.newest is not None:
            newer = queries.count_newer(db, self.query, self.newest)
            if newer != self._newer:
                self._newer = newer
                events.append(sse_event("newer", {"count": newer}))
        return events


class DetailFeed:
    """The sections of one workflow's page."""

    def __init__(self, page: Page, workflow_id: str) -> None:
        self.page = page
        self.workflow_id = workflow_id
        self._fingerprint: tuple[object, ...] | None = None
        self._sent: dict[str, Markup] = {}

    def keys(self) -> list[str]:
        return [workflow_key(self.workflow_id), cancel_key(self.workflow_id)]

    def check(self) -> list[bytes]:
        from .workflow_detail import detail_sections

        db = self.page.rt.sysdb.db
        fingerprint = queries.workflow_fingerprint(db, self.workflow_id)
        running = fingerprint[0] and fingerprint[0][0] in queries.ACTIVE_STATUSES
        # A running workflow's "running for" changes by itself: re-render it anyway.
        if fingerprint == self._fingerprint and not running:
            return []
        self._fingerprint = fingerprint
        sections = detail_sections(self.page, self.workflow_id)
        if sections is None:
            return []
        changed = {k: str(v) for k, v in sections.items() if self._sent.get(k) != v}
        self._sent.update(sections)
        return [sse_event("sections", changed)] if changed else []


class LiveStream:
    """One open event stream: subscribe, check, wait, until told to stop or too old."""

    def __init__(self, rt: Runtime, feed: Feed, recheck_seconds: float | None = None) -> None:
        self.rt = rt
        self.feed = feed
        self.recheck = max(recheck_seconds or rt.poll_interval, MIN_RECHECK_SECONDS)
        self._waiter: Waiter | None = None
        self._ends_at = time.monotonic() + MAX_STREAM_SECONDS
        self._last_sent = time.monotonic()
        self.closed = False

    def opening(self) -> bytes:
        """Subscribe, then read: a change between the two still wakes the next wait."""
        self._waiter = self.rt.notifier.subscribe(self.feed.keys())
        return f"retry: {RECONNECT_MS}\n\n".encode() + self.step()

    def next_wait(self) -> float | None:
        """Seconds to wait for a wake-up, or None when the stream should end."""
        if self.closed or self.rt.stopped or time.monotonic() >= self._ends_at:
            return None
        return self.recheck

    def step(self) -> bytes:
        """Check once; what to send (a heartbeat when nothing was sent for a while)."""
        events = self.feed.check()
        now = time.monotonic()
        if events:
            self._last_sent = now
            return b"".join(events)
        if now - self._last_sent >= HEARTBEAT_SECONDS:
            self._last_sent = now
            return b": keepalive\n\n"
        return b""

    def close(self) -> None:
        self.closed = True
        if self._waiter is not None:
            self.rt.notifier.unsubscribe(self._waiter)
            self._waiter = None

    def iter_sync(self) -> Iterator[bytes]:
        """For WSGI servers and the admin server (one thread per open stream)."""
        try:
            yield self.opening()
            while (wait := self.next_wait()) is not None and self._waiter is not None:
                self._waiter.wait(wait)
                data = self.step()
                if data:
                    yield data
        finally:
            self.close()

    async def iter_async(self) -> AsyncIterator[bytes]:
        """For ASGI servers: waits without a thread; database reads run in one."""
        try:
            yield await asyncio.to_thread(self.opening)
            while (wait := self.next_wait()) is not None and self._waiter is not None:
                await self._waiter.wait_async(wait)
                data = await asyncio.to_thread(self.step)
                if data:
                    yield data
        finally:
            self.close()
