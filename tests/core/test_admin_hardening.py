"""The admin server against careless and hostile clients, over real sockets."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dbos_core import DBOS, DBOSConfig, SetWorkflowID
from dbos_core.admin_http import AdminHTTPServer, AdminRequest, RouteTable, json_response
from dbos_core.admin_server import extra_routes
from dbos_core.error import DBOSConfigurationError
from tests.core.test_admin_server import TOKEN, free_port


def launch_admin(dbos_config: DBOSConfig, **extra: Any) -> int:
    port = free_port()
    DBOS.destroy()
    DBOS(config={**dbos_config, "run_admin_server": True, "admin_port": port, **extra})
    DBOS.launch()
    return port


@pytest.fixture()
def admin_port(dbos_config: DBOSConfig) -> Iterator[int]:
    yield launch_admin(dbos_config, admin_token=TOKEN)
    DBOS.destroy()


def raw_request(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes, read the whole answer (the server closes every connection)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.com"])
def test_no_token_beyond_loopback_is_refused_at_launch(
    dbos_config: DBOSConfig, monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    monkeypatch.delenv("DBOS_ADMIN_TOKEN", raising=False)
    DBOS.destroy()
    config = {**dbos_config, "run_admin_server": True, "admin_host": host}
    with pytest.raises(DBOSConfigurationError, match="without a token"):
        DBOS(config=config)  # type: ignore[arg-type]


def test_all_interfaces_with_a_token_serves_allowed_hosts(dbos_config: DBOSConfig) -> None:
    port = launch_admin(dbos_config, admin_host="0.0.0.0", admin_token=TOKEN)
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/workflows", headers=AUTH).json() == []
        assert httpx.get(f"http://127.0.0.1:{port}/workflows").status_code == 401
    finally:
        DBOS.destroy()


def test_host_and_origin_are_checked(dbos_config: DBOSConfig) -> None:
    port = launch_admin(dbos_config, admin_allowed_hosts=["ops.internal:9000"])
    base = f"http://127.0.0.1:{port}"
    try:
        with SetWorkflowID("victim"):
            DBOS.start_workflow(hardening_noop_workflow).get_result()
        # DNS rebinding: a page on evil.example resolves its name to 127.0.0.1.
        rebinding = httpx.get(f"{base}/workflows", headers={"Host": f"evil.example:{port}"})
        assert rebinding.status_code == 403
        assert rebinding.json()["error"] == "HOST_NOT_ALLOWED"
        assert "victim" not in rebinding.text
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", "ops.internal:9000"):
            assert httpx.get(f"{base}/workflows", headers={"Host": host}).status_code == 200
        # A state-changing request from a web page's Origin is refused...
        cross = httpx.post(
            f"{base}/workflows/victim/cancel", headers={"Origin": "http://evil.example"}
        )
        assert cross.status_code == 403 and cross.json()["error"] == "ORIGIN_NOT_ALLOWED"
        assert (
            httpx.post(f"{base}/workflows/victim/cancel", headers={"Origin": "null"}).status_code
            == 403
        )
        # ...one from an allowed origin (or a tool that sends none) is not.
        same = httpx.post(
            f"{base}/workflows/victim/cancel", headers={"Origin": f"http://localhost:{port}"}
        )
        assert same.status_code == 200
        # The health check answers any Host (load balancers, probes).
        assert httpx.get(f"{base}/health", headers={"Host": "10.0.0.7"}).status_code == 200
    finally:
        DBOS.destroy()


@DBOS.workflow()
def hardening_noop_workflow() -> str:
    return "ok"


def test_401_comes_before_any_body_is_read(admin_port: int) -> None:
    garbage = b"{{{ not json"
    answer = raw_request(
        admin_port,
        b"POST /workflows HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(garbage)}\r\n\r\n".encode()
        + garbage,
    )
    assert status_of(answer) == 401 and b"UNAUTHORIZED" in answer
    # A body announced but never sent: the refusal still comes at once.
    answer = raw_request(
        admin_port,
        b"POST /workflows/x/fork HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n",
    )
    assert status_of(answer) == 401
    # With the token, the same bad body is a 400.
    answer = raw_request(
        admin_port,
        b"POST /workflows HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + f"Authorization: Bearer {TOKEN}\r\nContent-Length: {len(garbage)}\r\n\r\n".encode()
        + garbage,
    )
    assert status_of(answer) == 400


def test_stalled_connections_do_not_stop_a_normal_request(admin_port: int) -> None:
    stalled = []
    try:
        for i in range(100):
            sock = socket.create_connection(("127.0.0.1", admin_port), timeout=5)
            # Half a request head, then silence (a slowloris client).
            sock.sendall(b"GET /workflows HTTP/1.1\r\nHost: 127.0.0.1\r\n" if i % 2 else b"G")
            stalled.append(sock)
        # Served at once, not after the stalled clients time out (10 s).
        answer = httpx.get(f"http://127.0.0.1:{admin_port}/workflows", headers=AUTH, timeout=1.0)
        assert answer.status_code == 200 and answer.json() == []
    finally:
        for sock in stalled:
            sock.close()


def test_limits_on_lists_heads_and_bodies(admin_port: int) -> None:
    base = f"http://127.0.0.1:{admin_port}"
    for i in range(3):
        with SetWorkflowID(f"listed-{i}"):
            hardening_noop_workflow()
    too_many = httpx.get(f"{base}/workflows", params={"limit": 1001}, headers=AUTH)
    assert too_many.status_code == 400 and "at most 1000" in too_many.json()["message"]
    assert len(httpx.get(f"{base}/workflows", params={"limit": 2}, headers=AUTH).json()) == 2
    assert httpx.post(f"{base}/workflows", json={"limit": 5000}, headers=AUTH).status_code == 400
    huge_head = raw_request(
        admin_port, b"GET /workflows HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"a" * 20000
    )
    assert status_of(huge_head) == 431
    huge_body = raw_request(
        admin_port,
        b"POST /workflows HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + f"Authorization: Bearer {TOKEN}\r\nContent-Length: {10**8}\r\n\r\n".encode(),
    )
    assert status_of(huge_body) == 413
    assert status_of(raw_request(admin_port, b"NONSENSE\r\n\r\n")) == 400
    bad_id = httpx.post(f"{base}/workflows/a%00b/cancel", headers=AUTH)
    assert bad_id.status_code == 400 and bad_id.json()["error"] == "INVALID_ID"


def test_a_500_says_nothing_but_an_incident_id(
    dbos_config: DBOSConfig, caplog: pytest.LogCaptureFixture
) -> None:
    def add_failing_route(routes: RouteTable, rt: Any) -> None:
        def fail(request: AdminRequest) -> Any:
            raise RuntimeError("password=hunter2 at db.internal")

        routes.add("GET", "/explode", fail)

    extra_routes.append(add_failing_route)
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("dbos").addHandler(handler)
    try:
        port = launch_admin(dbos_config, admin_token=TOKEN)
        answer = httpx.get(f"http://127.0.0.1:{port}/explode", headers=AUTH)
    finally:
        extra_routes.remove(add_failing_route)
        logging.getLogger("dbos").removeHandler(handler)
        DBOS.destroy()
    assert answer.status_code == 500 and answer.json()["error"] == "INTERNAL"
    assert "hunter2" not in answer.text and "db.internal" not in answer.text
    incident = answer.json()["message"].rsplit(" ", 1)[-1].rstrip(")")
    assert any(incident in line for line in records)


def test_a_silent_client_is_closed_after_the_request_timeout() -> None:
    routes = RouteTable()
    routes.add("GET", "/ping", lambda request: json_response(200, "pong"))
    server = AdminHTTPServer(
        "127.0.0.1",
        0,
        routes,
        lambda request, route: None,
        logging.getLogger("test"),
        request_timeout=0.3,
    )
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"GET /pi")
            # Closed by the server (our own 10 s timeout would raise instead).
            assert sock.recv(100) == b""
        assert b'"pong"' in raw_request(server.port, b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
    finally:
        server.stop()
