"""A small HTTP/1.1 server for the admin routes that slow or hostile clients cannot stall.

One I/O thread reads every connection without blocking (``selectors``) until its request
head is complete, decides from the head alone whether the request may go on (the
``gate``: Host allow-list, Origin, token) and only then reads a body, bounded in size.
Complete requests run on a fixed pool of worker threads. A connection that does not
deliver its request within ``request_timeout`` is closed, at most ``max_connections`` are
open at once (the oldest unfinished one makes room), and every response closes its
connection. So a hundred clients that connect and say nothing hold no thread, and a
normal request is still served at once.

Routes live in a ``RouteTable`` (method, path pattern with ``{name}`` segments,
handler); handlers take an ``AdminRequest`` and return an ``AdminResponse``.
"""

from __future__ import annotations

import json
import logging
import selectors
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote, urlsplit

from .error import DBOSException

MAX_HEAD_BYTES = 16 * 1024
MAX_BODY_BYTES = 1 << 20
# Seconds a client has to deliver its whole request, and to take a response.
REQUEST_TIMEOUT = 10.0
WRITE_TIMEOUT = 10.0
# Seconds we keep reading (and dropping) what a refused client still sends, so that
# closing does not reset the connection before it has read our answer.
LINGER_SECONDS = 2.0


class HTTPError(Exception):
    """An admin request refused with a status and a stable code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class AdminRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes = b""
    params: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        """The body as JSON (None when empty); a 400 when it is not JSON."""
        if not self.body.strip():
            return None
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise HTTPError(400, "BAD_REQUEST", f"The body is not valid JSON: {exc}") from None


@dataclass
class AdminResponse:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    # A streamed body (server-sent events): written chunk by chunk on a thread of its
    # own until it ends or the client goes away; ``body`` is then ignored.
    stream: Iterator[bytes] | None = None


def json_response(status: int, payload: Any) -> AdminResponse:
    return AdminResponse(status, json.dumps(payload, default=str).encode())


def error_payload(code: str, message: str) -> dict[str, str]:
    return {"error": code, "message": message}


Handler = Callable[[AdminRequest], AdminResponse]


@dataclass
class Route:
    method: str
    pattern: str
    handler: Handler
    # Public routes (the health check) need no token and answer any Host.
    public: bool = False
    # Another credential this route takes instead of the bearer token (the dashboard's
    # session cookie); it sees the request head only. The Host and Origin checks stay.
    accepts: Callable[[AdminRequest], bool] | None = None

    def match(self, segments: list[str]) -> dict[str, str] | None:
        parts = [p for p in self.pattern.strip("/").split("/") if p]
        if len(parts) != len(segments):
            return None
        params: dict[str, str] = {}
        for part, segment in zip(parts, segments, strict=True):
            if part.startswith("{") and part.endswith("}"):
                params[part[1:-1]] = segment
            elif part != segment:
                return None
        return params


class RouteTable:
    """The admin routes; add more with ``add`` (a dashboard, metrics)."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(
        self,
        method: str,
        pattern: str,
        handler: Handler,
        *,
        public: bool = False,
        accepts: Callable[[AdminRequest], bool] | None = None,
    ) -> None:
        self.routes.append(Route(method.upper(), pattern, handler, public, accepts))

    def find(self, method: str, path: str) -> tuple[Route | None, dict[str, str], list[str]]:
        """The route for ``method path`` and its parameters; else None and the methods
        the path allows (empty when no route has this path)."""
        segments = [unquote(p) for p in path.split("/") if p]
        allowed: list[str] = []
        for route in self.routes:
            params = route.match(segments)
            if params is None:
                continue
            if route.method == method:
                return route, params, []
            allowed.append(route.method)
        return None, {}, allowed


# The gate sees the request head and the route (None when no route matched) and raises
# HTTPError to refuse before any body is read.
Gate = Callable[[AdminRequest, Route | None], None]


@dataclass
class _Connection:
    sock: socket.socket
    opened: float
    buffer: bytearray = field(default_factory=bytearray)
    request: AdminRequest | None = None
    route: Route | None = None
    body_length: int = 0
    # "head", "body", or "linger" (answered; dropping what the client still sends).
    phase: str = "head"
    deadline: float = 0.0


def _status_line(status: int) -> str:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    return f"HTTP/1.1 {status} {reason}\r\n"


def encode_response(response: AdminResponse) -> bytes:
    head = _status_line(response.status)
    head += f"Content-Type: {response.content_type}\r\n"
    if response.stream is None:
        head += f"Content-Length: {len(response.body)}\r\n"
    else:
        return _encode_head(head, response)
    return _encode_head(head, response) + response.body


def _encode_head(head: str, response: AdminResponse) -> bytes:
    head += "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
    for name, value in response.headers:
        head += f"{name}: {value}\r\n"
    head += "Connection: close\r\n\r\n"
    return head.encode("latin-1")


def _parse_head(data: bytes) -> AdminRequest:
    try:
        text = data.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        raise HTTPError(400, "BAD_REQUEST", "Unreadable request head") from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HTTPError(400, "BAD_REQUEST", "Malformed request line")
    method, target, _version = parts
    if not method.isalpha() or not method.isupper():
        raise HTTPError(400, "BAD_REQUEST", "Malformed request method")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or line[0] in " \t":
            raise HTTPError(400, "BAD_REQUEST", "Malformed header line")
        key = name.lower()
        value = value.strip()
        if key in headers and key in ("content-length", "host") and headers[key] != value:
            raise HTTPError(400, "BAD_REQUEST", f"Conflicting {name} headers")
        headers[key] = value if key not in headers else f"{headers[key]}, {value}"
    url = urlsplit(target)
    if not url.path.startswith("/"):
        raise HTTPError(400, "BAD_REQUEST", "The request target must be a path")
    return AdminRequest(method, url.path, url.query, headers)


class AdminHTTPServer:
    """Serves a ``RouteTable`` on ``host:port`` (see the module docstring)."""

    def __init__(
        self,
        host: str,
        port: int,
        routes: RouteTable,
        gate: Gate,
        logger: logging.Logger,
        *,
        workers: int = 4,
        max_connections: int = 256,
        max_queued: int = 64,
        max_streams: int = 16,
        request_timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        self.host = host
        self.port = port
        self.routes = routes
        self.gate = gate
        self.logger = logger
        self.workers = workers
        self.max_connections = max_connections
        self.max_queued = max_queued
        self.request_timeout = request_timeout
        self._listener: socket.socket | None = None
        self._selector: selectors.BaseSelector | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._stopping = threading.Event()
        self._connections: dict[socket.socket, _Connection] = {}
        self._queued = 0
        self._queued_lock = threading.Lock()
        # Open streamed responses: each has a thread; past the limit they are refused.
        self.max_streams = max_streams
        self._streams: set[socket.socket] = set()

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        """Bind and serve in the background; raises OSError when the port is taken."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.host, self.port))
            listener.listen(128)
            listener.setblocking(False)
        except OSError:
            listener.close()
            raise
        self._listener = listener
        self.port = int(listener.getsockname()[1])
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(listener, selectors.EVENT_READ, "listen")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="dbos-admin-worker")
        self._thread = threading.Thread(target=self._loop, name="dbos-admin", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._wake_w is not None:
            try:
                self._wake_w.send(b"x")
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        with self._queued_lock:
            streams = list(self._streams)
        for stream_sock in streams:
            try:
                stream_sock.shutdown(socket.SHUT_RDWR)  # its next write fails; it ends
            except OSError:
                pass
        for sock in (self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()
        self._wake_r = self._wake_w = None

    # -- the I/O thread ---------------------------------------------------------------

    def _loop(self) -> None:
        assert self._selector is not None and self._listener is not None
        try:
            while not self._stopping.is_set():
                for key, _mask in self._selector.select(self._next_timeout()):
                    if key.data == "listen":
                        self._accept()
                    elif key.data == "wake":
                        self._drain_wake()
                    else:
                        self._readable(key.data)
                self._expire()
        except Exception:
            self.logger.exception("Admin server I/O loop failed")
        finally:
            for conn in list(self._connections.values()):
                self._close(conn)
            self._selector.close()
            self._listener.close()

    def _next_timeout(self) -> float:
        if not self._connections:
            return 1.0
        soonest = min(c.deadline for c in self._connections.values())
        return max(0.0, min(1.0, soonest - time.monotonic()))

    def _drain_wake(self) -> None:
        assert self._wake_r is not None
        try:
            while self._wake_r.recv(1024):
                pass
        except BlockingIOError:
            pass

    def _accept(self) -> None:
        assert self._listener is not None and self._selector is not None
        while True:
            try:
                sock, _addr = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.logger.warning("Admin server could not accept a connection: %s", exc)
                return
            sock.setblocking(False)
            now = time.monotonic()
            conn = _Connection(sock, now, deadline=now + self.request_timeout)
            if len(self._connections) >= self.max_connections:
                # Make room: the oldest connection still sending its request goes.
                oldest = min(self._connections.values(), key=lambda c: c.opened)
                self._close(oldest)
            self._connections[sock] = conn
            self._selector.register(sock, selectors.EVENT_READ, conn)

    def _expire(self) -> None:
        now = time.monotonic()
        for conn in [c for c in self._connections.values() if c.deadline <= now]:
            self._close(conn)

    def _close(self, conn: _Connection) -> None:
        self._connections.pop(conn.sock, None)
        if self._selector is not None:
            try:
                self._selector.unregister(conn.sock)
            except (KeyError, ValueError):
                pass
        conn.sock.close()

    def _readable(self, conn: _Connection) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        if not data:
            self._close(conn)
            return
        if conn.phase == "linger":
            return
        conn.buffer += data
        try:
            self._advance(conn)
        except HTTPError as exc:
            self._refuse(conn, exc)

    def _advance(self, conn: _Connection) -> None:
        if conn.phase == "head":
            end = conn.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(conn.buffer) > MAX_HEAD_BYTES:
                    raise HTTPError(431, "HEADERS_TOO_LARGE", "The request head is too large")
                return
            if end > MAX_HEAD_BYTES:
                raise HTTPError(431, "HEADERS_TOO_LARGE", "The request head is too large")
            request = _parse_head(bytes(conn.buffer[:end]))
            del conn.buffer[: end + 4]
            route, params, allowed = self.routes.find(request.method, request.path)
            request.params = params
            # Decided on the head alone: a refused client never gets its body read.
            self.gate(request, route)
            if route is None:
                if allowed:
                    raise HTTPError(
                        405,
                        "METHOD_NOT_ALLOWED",
                        f"Use {' or '.join(sorted(set(allowed)))} here, not {request.method}",
                    )
                raise HTTPError(404, "NOT_FOUND", f"No admin route {request.path!r}")
            if "transfer-encoding" in request.headers:
                raise HTTPError(
                    411, "LENGTH_REQUIRED", "Send a Content-Length body, not a chunked one"
                )
            conn.body_length = self._content_length(request)
            conn.request, conn.route, conn.phase = request, route, "body"
        if conn.phase == "body" and len(conn.buffer) >= conn.body_length:
            assert conn.request is not None and conn.route is not None
            conn.request.body = bytes(conn.buffer[: conn.body_length])
            self._dispatch(conn, conn.route, conn.request)

    @staticmethod
    def _content_length(request: AdminRequest) -> int:
        text = request.headers.get("content-length")
        if text is None:
            return 0
        if not text.isdigit():
            raise HTTPError(400, "BAD_REQUEST", "Content-Length is not a number")
        length = int(text)
        if length > MAX_BODY_BYTES:
            raise HTTPError(
                413, "TOO_LARGE", f"Request bodies are limited to {MAX_BODY_BYTES} bytes"
            )
        return length

    def _refuse(self, conn: _Connection, exc: HTTPError) -> None:
        """Answer from the I/O thread, then linger so the client reads the answer."""
        data = encode_response(json_response(exc.status, error_payload(exc.code, exc.message)))
        try:
            conn.sock.send(data)  # a small answer on a fresh connection: it fits
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(conn)
            return
        conn.phase = "linger"
        conn.buffer.clear()
        conn.deadline = time.monotonic() + LINGER_SECONDS

    def _dispatch(self, conn: _Connection, route: Route, request: AdminRequest) -> None:
        with self._queued_lock:
            busy = self._queued >= self.max_queued
            if not busy:
                self._queued += 1
        if busy or self._pool is None:
            self._refuse(conn, HTTPError(503, "BUSY", "The admin server is busy; try again"))
            return
        # The worker owns the socket from now on.
        self._connections.pop(conn.sock, None)
        assert self._selector is not None
        self._selector.unregister(conn.sock)
        self._pool.submit(self._serve, conn.sock, route, request)

    # -- the workers --------------------------------------------------------------------

    def _serve(self, sock: socket.socket, route: Route, request: AdminRequest) -> None:
        streaming = False
        try:
            response = self._respond(route, request)
            if response.stream is not None:
                streaming = self._start_stream(sock, response)
                if streaming:
                    return
                response = json_response(
                    503, error_payload("BUSY", "Too many open event streams; try again")
                )
            sock.setblocking(True)
            sock.settimeout(WRITE_TIMEOUT)
            sock.sendall(encode_response(response))
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            if not streaming:
                sock.close()
            with self._queued_lock:
                self._queued -= 1

    def _start_stream(self, sock: socket.socket, response: AdminResponse) -> bool:
        """Hand a streamed response to a thread of its own; False when too many are open."""
        with self._queued_lock:
            if len(self._streams) >= self.max_streams or self._stopping.is_set():
                return False
            self._streams.add(sock)
        threading.Thread(
            target=self._stream, args=(sock, response), name="dbos-admin-stream", daemon=True
        ).start()
        return True

    def _stream(self, sock: socket.socket, response: AdminResponse) -> None:
        assert response.stream is not None
        chunks = response.stream
        try:
            sock.setblocking(True)
            sock.settimeout(WRITE_TIMEOUT)
            sock.sendall(encode_response(response))
            for chunk in chunks:
                if self._stopping.is_set():
                    break
                sock.sendall(chunk)
        except OSError:
            pass  # the client went away (or the server stopped): end the stream
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()  # runs the stream's own clean-up (unsubscribing its waiter)
            with self._queued_lock:
                self._streams.discard(sock)
            sock.close()

    def _respond(self, route: Route, request: AdminRequest) -> AdminResponse:
        try:
            return route.handler(request)
        except HTTPError as exc:
            return json_response(exc.status, error_payload(exc.code, exc.message))
        except DBOSException as exc:
            status = exc.http_status if 400 <= exc.http_status <= 599 else 500
            if status < 500:
                return json_response(status, error_payload(exc.code, exc.message))
            self.logger.error("Admin request %s %s failed: %s", request.method, request.path, exc)
            return json_response(
                status, error_payload(exc.code, "Internal error; the details are in the log")
            )
        except Exception:
            incident = uuid.uuid4().hex[:12]
            self.logger.exception(
                "Admin request %s %s failed (incident %s)", request.method, request.path, incident
            )
            return json_response(
                500,
                error_payload(
                    "INTERNAL", f"Internal error; the details are in the log (incident {incident})"
                ),
            )
