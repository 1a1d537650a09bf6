"""DBOSMiddleware on requests: idempotency keys, request ids, users, errors, streaming."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import BackgroundTasks, Depends, FastAPI, Request, WebSocket
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient
from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    SimpleUser,
)
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection

from dbos_core import DBOS, SetWorkflowID
from dbos_core.error import DBOSNonExistentWorkflowError
from dbos_fastapi import (
    DBOSMiddleware,
    RequestIdLogFilter,
    install_exception_handlers,
    set_authenticated_user,
)


class Runs:
    """What the workflows of one app did, for the assertions."""

    def __init__(self) -> None:
        self.steps: list[str] = []
        self.lock = threading.Lock()

    def add(self, what: str) -> None:
        with self.lock:
            self.steps.append(what)


def make_app(runs: Runs, **middleware: Any) -> FastAPI:
    app = FastAPI()

    @DBOS.step()
    def charge(item: str) -> str:
        runs.add(item)
        return f"charged {item}"

    @DBOS.workflow()
    def checkout(item: str) -> dict[str, Any]:
        return {
            "workflow_id": DBOS.workflow_id,
            "result": charge(item),
            "request_id": DBOS.request_id,
            "user": DBOS.authenticated_user,
        }

    @DBOS.workflow()
    async def checkout_async(item: str) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"workflow_id": DBOS.workflow_id, "result": charge(item)}

    @app.post("/sync/{item}")
    def sync_endpoint(item: str) -> dict[str, Any]:
        return checkout(item)

    @app.post("/async/{item}")
    async def async_endpoint(item: str) -> dict[str, Any]:
        return await checkout_async(item)

    @app.post("/start/{item}")
    async def start_endpoint(item: str) -> dict[str, Any]:
        handle = await DBOS.start_workflow_async(checkout_async, item)
        return {"workflow_id": handle.get_workflow_id(), **(await handle.get_result())}

    @app.post("/two/{item}")
    def two_workflows(item: str) -> list[str]:
        first = checkout(item + "-a")["workflow_id"]
        second = DBOS.start_workflow(checkout, item + "-b").get_workflow_id()
        return [first, second]

    @app.get("/request-id")
    def request_id() -> str | None:
        return DBOS.request_id

    app.add_middleware(DBOSMiddleware, **middleware)
    return app


@pytest.fixture()
def runs() -> Runs:
    return Runs()


def test_same_key_twice_runs_once_sync_and_async(dbos: type[DBOS], runs: Runs) -> None:
    client = TestClient(make_app(runs))
    for path in ("/sync/book", "/async/pen", "/start/cup"):
        key = f"key-{path.strip('/').replace('/', '-')}"
        first = client.post(path, headers={"dbos-idempotency-key": key})
        second = client.post(path, headers={"dbos-idempotency-key": key})
        assert first.status_code == second.status_code == 200
        assert first.json()["workflow_id"] == key
        assert first.json() == second.json()
    assert runs.steps == ["book", "pen", "cup"]
    status = DBOS.retrieve_workflow("key-sync-book").get_status()
    assert status.status == "SUCCESS" and status.output["result"] == "charged book"


def test_header_name_is_configurable(dbos: type[DBOS], runs: Runs) -> None:
    client = TestClient(make_app(runs, idempotency_header="X-Retry-Token"))
    r1 = client.post("/sync/a", headers={"x-retry-token": "tok-1"})
    r2 = client.post("/sync/a", headers={"dbos-idempotency-key": "ignored"})
    assert r1.json()["workflow_id"] == "tok-1"
    assert r2.json()["workflow_id"] not in ("tok-1", "ignored")


def test_later_workflows_of_a_request_get_their_own_ids(dbos: type[DBOS], runs: Runs) -> None:
    client = TestClient(make_app(runs))
    first, second = client.post("/two/x", headers={"dbos-idempotency-key": "k2"}).json()
    assert first == "k2"
    assert second != "k2"
    DBOS.retrieve_workflow(second).get_result()
    # Retried: the first workflow is found by its key, the second is new work.
    again = client.post("/two/x", headers={"dbos-idempotency-key": "k2"}).json()
    assert again[0] == "k2" and again[1] not in ("k2", second)
    DBOS.retrieve_workflow(again[1]).get_result()
    assert sorted(runs.steps) == ["x-a", "x-b", "x-b"]


def test_key_does_not_leak_into_next_request(dbos: type[DBOS], runs: Runs) -> None:
    client = TestClient(make_app(runs))
    keyed = client.post("/sync/a", headers={"dbos-idempotency-key": "only-once"}).json()
    plain_sync = client.post("/sync/b").json()
    plain_async = client.post("/async/c").json()
    assert keyed["workflow_id"] == "only-once"
    ids = {plain_sync["workflow_id"], plain_async["workflow_id"]}
    assert "only-once" not in ids and len(ids) == 2
    assert runs.steps == ["a", "b", "c"]


def test_explicit_set_workflow_id_wins_over_the_header(dbos: type[DBOS], runs: Runs) -> None:
    app = make_app(runs)

    @app.post("/explicit")
    def explicit() -> list[str]:
        ids = []
        with SetWorkflowID("chosen-by-code"):
            ids.append(DBOS.start_workflow(_noop_workflow).get_workflow_id())
        ids.append(DBOS.start_workflow(_noop_workflow).get_workflow_id())
        return ids

    ids = TestClient(app).post("/explicit", headers={"dbos-idempotency-key": "hdr"}).json()
    assert ids == ["chosen-by-code", "hdr"]
    assert DBOS.retrieve_workflow("hdr").get_result() is None


@DBOS.workflow()
def _noop_workflow() -> None:
    return None


def test_background_task_after_response_gets_a_fresh_id(dbos: type[DBOS], runs: Runs) -> None:
    app = make_app(runs)
    started: list[str] = []
    done = threading.Event()

    def later(item: str) -> None:
        started.append(DBOS.start_workflow(_noop_workflow).get_workflow_id())
        done.set()

    async def later_async() -> None:
        handle = await DBOS.start_workflow_async(_noop_workflow)
        started.append(handle.get_workflow_id())

    @app.post("/bg-sync")
    def bg_sync(tasks: BackgroundTasks) -> str:
        tasks.add_task(later, "x")
        return "ok"

    @app.post("/bg-async")
    async def bg_async(tasks: BackgroundTasks) -> str:
        tasks.add_task(later_async)
        return "ok"

    client = TestClient(app)
    assert client.post("/bg-sync", headers={"dbos-idempotency-key": "bg-1"}).json() == "ok"
    assert client.post("/bg-async", headers={"dbos-idempotency-key": "bg-2"}).json() == "ok"
    assert done.is_set() and len(started) == 2
    assert "bg-1" not in started and "bg-2" not in started
    for workflow_id in started:
        assert DBOS.retrieve_workflow(workflow_id).get_result() is None


def test_sync_endpoint_sees_the_request_in_its_threadpool(dbos: type[DBOS], runs: Runs) -> None:
    client = TestClient(make_app(runs))
    seen = client.get("/request-id", headers={"x-request-id": "req-77"}).json()
    assert seen == "req-77"
    generated = client.get("/request-id").json()
    assert isinstance(generated, str) and generated and generated != "req-77"


def test_request_id_is_recorded_on_the_workflow(dbos: type[DBOS], runs: Runs) -> None:
    client = TestClient(make_app(runs, request_id_header="x-correlation-id"))
    body = client.post(
        "/sync/r", headers={"x-correlation-id": "corr-9", "dbos-idempotency-key": "rid-wf"}
    ).json()
    assert body["request_id"] == "corr-9"
    assert DBOS.retrieve_workflow("rid-wf").get_status().workflow_id == "rid-wf"


async def test_concurrent_same_key_runs_once(dbos: type[DBOS]) -> None:
    app = FastAPI()
    gate = threading.Event()
    entered = threading.Event()
    runs: list[str] = []

    @DBOS.step()
    def slow_charge(amount: int) -> int:
        runs.append("charge")
        entered.set()
        gate.wait(10)
        return amount * 2

    @DBOS.workflow()
    def pay(amount: int) -> dict[str, Any]:
        return {"workflow_id": DBOS.workflow_id, "paid": slow_charge(amount)}

    @app.post("/pay/{amount}")
    async def pay_endpoint(amount: int) -> dict[str, Any]:
        handle = await DBOS.start_workflow_async(pay, amount)
        return await handle.get_result()

    app.add_middleware(DBOSMiddleware)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        headers = {"dbos-idempotency-key": "pay-1"}
        first = asyncio.ensure_future(client.post("/pay/21", headers=headers))
        second = asyncio.ensure_future(client.post("/pay/21", headers=headers))
        await asyncio.to_thread(entered.wait, 10)
        gate.set()
        r1, r2 = await asyncio.gather(first, second)
    assert r1.status_code == r2.status_code == 200
    assert r1.json() == r2.json() == {"workflow_id": "pay-1", "paid": 42}
    assert runs == ["charge"]


async def test_concurrent_requests_keep_their_own_keys(dbos: type[DBOS]) -> None:
    app = FastAPI()
    both_in = asyncio.Barrier(2)

    @DBOS.workflow()
    async def echo(tag: str) -> str:
        return f"{tag}:{DBOS.workflow_id}"

    @app.post("/echo/{tag}")
    async def echo_endpoint(tag: str) -> str:
        await both_in.wait()  # both requests are in flight before either starts work
        return await echo(tag)

    app.add_middleware(DBOSMiddleware)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        responses = await asyncio.gather(
            client.post("/echo/a", headers={"dbos-idempotency-key": "key-a"}),
            client.post("/echo/b", headers={"dbos-idempotency-key": "key-b"}),
        )
    assert [r.json() for r in responses] == ["a:key-a", "b:key-b"]


# -- users ----------------------------------------------------------------------------


class HeaderAuth(AuthenticationBackend):
    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SimpleUser] | None:
        name = conn.headers.get("x-user")
        if name is None:
            return None
        roles = [r for r in conn.headers.get("x-roles", "").split(",") if r]
        return AuthCredentials(roles), SimpleUser(name)


def user_app(**middleware: Any) -> tuple[FastAPI, list[str]]:
    app = FastAPI()
    resolved: list[str] = []

    @DBOS.workflow()
    def whoami() -> dict[str, Any]:
        return {
            "user": DBOS.authenticated_user,
            "roles": DBOS.authenticated_roles,
            "role": DBOS.assumed_role,
        }

    @app.post("/whoami")
    def whoami_endpoint() -> dict[str, Any]:
        return whoami()

    @app.get("/no-workflow")
    def no_workflow() -> str:
        return "fine"

    def current_user(request: Request) -> str | None:
        user = request.headers.get("x-dep-user")
        if user is not None:
            set_authenticated_user(request, user, ["member"], assumed_role="member")
        return user

    @app.post("/whoami-dep")
    def whoami_dep(user: str | None = Depends(current_user)) -> dict[str, Any]:
        return whoami()

    resolver = middleware.pop("user_resolver", None)
    if resolver is not None:

        def counting(conn: HTTPConnection) -> Any:
            resolved.append(conn.url.path)
            return resolver(conn)

        middleware["user_resolver"] = counting
    app.add_middleware(DBOSMiddleware, **middleware)
    if middleware.get("user_resolver") is None:
        # Inside DBOSMiddleware: the user appears in the shared scope after we saw it.
        app.add_middleware(AuthenticationMiddleware, backend=HeaderAuth())
    return app, resolved


def test_user_from_starlette_authentication(dbos: type[DBOS]) -> None:
    app, _ = user_app()
    client = TestClient(app)
    body = client.post(
        "/whoami",
        headers={"x-user": "alice", "x-roles": "admin,buyer", "dbos-idempotency-key": "u-1"},
    ).json()
    assert body == {"user": "alice", "roles": ["admin", "buyer"], "role": None}
    status = DBOS.retrieve_workflow("u-1").get_status()
    assert status.authenticated_user == "alice"
    assert status.authenticated_roles == ["admin", "buyer"]
    assert status.assumed_role is None
    anonymous = client.post("/whoami", headers={"dbos-idempotency-key": "u-2"}).json()
    assert anonymous == {"user": None, "roles": None, "role": None}
    status = DBOS.retrieve_workflow("u-2").get_status()
    assert status.authenticated_user is None and status.authenticated_roles is None


def test_user_from_resolver_is_lazy(dbos: type[DBOS]) -> None:
    def resolver(conn: HTTPConnection) -> Any:
        token = conn.headers.get("authorization", "")
        if not token.startswith("Bearer "):
            return None
        return token.removeprefix("Bearer "), ["ops"], "ops"

    app, resolved = user_app(user_resolver=resolver)
    client = TestClient(app)
    assert client.get("/no-workflow", headers={"authorization": "Bearer bob"}).json() == "fine"
    assert resolved == []  # no workflow, no resolution
    body = client.post(
        "/whoami", headers={"authorization": "Bearer bob", "dbos-idempotency-key": "u-3"}
    ).json()
    assert body == {"user": "bob", "roles": ["ops"], "role": "ops"}
    assert resolved == ["/whoami"]
    status = DBOS.retrieve_workflow("u-3").get_status()
    assert (status.authenticated_user, status.authenticated_roles, status.assumed_role) == (
        "bob",
        ["ops"],
        "ops",
    )
    assert client.post("/whoami").json() == {"user": None, "roles": None, "role": None}


def test_user_from_a_fastapi_dependency(dbos: type[DBOS]) -> None:
    app, _ = user_app()
    client = TestClient(app)
    body = client.post(
        "/whoami-dep", headers={"x-dep-user": "carol", "dbos-idempotency-key": "u-4"}
    ).json()
    assert body == {"user": "carol", "roles": ["member"], "role": "member"}
    assert DBOS.retrieve_workflow("u-4").get_status().authenticated_user == "carol"


# -- errors and streaming -------------------------------------------------------------


def error_app(install: bool, handle_errors: bool = True) -> FastAPI:
    app = FastAPI()

    @DBOS.workflow()
    def first_kind() -> str:
        return "first"

    @DBOS.workflow()
    def second_kind() -> str:
        return "second"

    @app.post("/first")
    def first() -> str:
        return first_kind()

    @app.post("/second")
    async def second() -> str:
        return await asyncio.to_thread(second_kind)

    @app.get("/missing")
    def missing() -> str:
        return DBOS.retrieve_workflow("no-such-workflow").get_workflow_id()

    app.add_middleware(DBOSMiddleware, handle_errors=handle_errors)
    if install:
        install_exception_handlers(app)
    return app


@pytest.mark.parametrize("install", [True, False], ids=["exception-handlers", "middleware"])
def test_dbos_errors_become_json_responses(dbos: type[DBOS], install: bool) -> None:
    client = TestClient(error_app(install))
    headers = {"dbos-idempotency-key": f"dup-{install}"}
    assert client.post("/first", headers=headers).json() == "first"
    conflict = client.post("/second", headers=headers)
    assert conflict.status_code == 409
    assert conflict.json()["error"] == "CONFLICTING_WORKFLOW"
    assert conflict.json()["workflow_id"] == f"dup-{install}"
    missing = client.get("/missing")
    assert missing.status_code == 404
    assert missing.json() == {
        "error": "NONEXISTENT_WORKFLOW",
        "message": DBOSNonExistentWorkflowError("no-such-workflow").message,
        "workflow_id": "no-such-workflow",
    }
    # The app keeps serving after an error.
    assert client.post("/first", headers=headers).json() == "first"


def test_errors_propagate_when_handling_is_off(dbos: type[DBOS]) -> None:
    client = TestClient(error_app(install=False, handle_errors=False))
    with pytest.raises(DBOSNonExistentWorkflowError):
        client.get("/missing")


def test_streaming_response_is_untouched(dbos: type[DBOS], runs: Runs) -> None:
    app = make_app(runs)

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(5):
                await asyncio.sleep(0)
                yield f"chunk-{i};".encode()

        return StreamingResponse(chunks(), media_type="text/plain", headers={"x-kind": "s"})

    with TestClient(app).stream("GET", "/stream") as response:
        parts = list(response.iter_bytes())
        assert response.headers["x-kind"] == "s"
        assert response.headers["content-type"].startswith("text/plain")
    assert b"".join(parts) == b"".join(f"chunk-{i};".encode() for i in range(5))


def test_background_workflow_keeps_user_and_request_id(dbos: type[DBOS]) -> None:
    app = FastAPI()
    started: list[str] = []

    @DBOS.workflow()
    def audit() -> tuple[str | None, str | None]:
        return DBOS.authenticated_user, DBOS.request_id

    def later() -> None:
        started.append(DBOS.start_workflow(audit).get_workflow_id())

    @app.post("/audit")
    def audit_endpoint(tasks: BackgroundTasks) -> str:
        tasks.add_task(later)
        return "queued"

    app.add_middleware(DBOSMiddleware, user_resolver=lambda conn: conn.headers.get("x-user"))
    response = TestClient(app).post(
        "/audit", headers={"x-user": "erin", "x-request-id": "req-bg", "dbos-idempotency-key": "k"}
    )
    assert response.json() == "queued"
    assert len(started) == 1 and started[0] != "k"
    assert DBOS.retrieve_workflow(started[0]).get_result() == ("erin", "req-bg")


def test_websocket_connection_is_a_request_scope(dbos: type[DBOS]) -> None:
    app = FastAPI()

    @DBOS.workflow()
    async def greet(name: str) -> dict[str, Any]:
        return {"workflow_id": DBOS.workflow_id, "greeting": f"hi {name}"}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        while True:
            name = await websocket.receive_text()
            if name == "bye":
                break
            await websocket.send_json(await greet(name))
        await websocket.close()

    app.add_middleware(DBOSMiddleware)
    client = TestClient(app)
    with client.websocket_connect("/ws", headers={"dbos-idempotency-key": "ws-1"}) as socket:
        socket.send_text("ann")
        first = socket.receive_json()
        socket.send_text("ben")
        second = socket.receive_json()
        socket.send_text("bye")
    assert first == {"workflow_id": "ws-1", "greeting": "hi ann"}
    assert second["workflow_id"] != "ws-1" and second["greeting"] == "hi ben"


def test_request_id_reaches_log_records(dbos: type[DBOS]) -> None:
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    app_log = logging.getLogger("test.fastapi.request-id")
    handler = Collect()
    handler.addFilter(RequestIdLogFilter())
    app_log.addHandler(handler)
    app_log.setLevel(logging.INFO)
    app = FastAPI()

    @DBOS.workflow()
    def logged() -> None:
        app_log.info("in workflow")

    @app.post("/logged")
    def logged_endpoint() -> None:
        app_log.info("in endpoint")
        logged()

    app.add_middleware(DBOSMiddleware)
    try:
        TestClient(app).post(
            "/logged", headers={"x-request-id": "req-log", "dbos-idempotency-key": "wf-log"}
        )
        app_log.info("outside")
    finally:
        app_log.removeHandler(handler)
    seen = [(r.getMessage(), r.request_id, r.workflow_id) for r in records]  # type: ignore[attr-defined]
    assert seen == [
        ("in endpoint", "req-log", "-"),
        ("in workflow", "req-log", "wf-log"),
        ("outside", "-", "-"),
    ]
