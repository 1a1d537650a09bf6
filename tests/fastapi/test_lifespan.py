"""DBOSMiddleware and the ASGI lifespan: launch after the app's startup, destroy after its shutdown."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from dbos_core import DBOS, DBOSConfig, integration
from dbos_core.error import DBOSException
from dbos_fastapi import DBOSMiddleware


@pytest.fixture()
def configured(dbos_config: DBOSConfig) -> Iterator[DBOSConfig]:
    """DBOS configured but not launched, as an app module leaves it at import."""
    DBOS.destroy()
    DBOS(config=dbos_config)
    yield dbos_config
    DBOS.destroy()


@DBOS.workflow()
def _lifespan_workflow(x: int) -> int:
    return x + 1


def add_workflow_route(app: FastAPI) -> None:
    @app.post("/run/{x}")
    def run(x: int) -> int:
        return _lifespan_workflow(x)


def test_launch_after_app_startup_destroy_after_app_shutdown(
    configured: DBOSConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    launch_threads: list[threading.Thread] = []
    loop_threads: list[threading.Thread] = []
    real_launch = integration.launch

    def recording_launch() -> None:
        launch_threads.append(threading.current_thread())
        real_launch()

    monkeypatch.setattr(integration, "launch", recording_launch)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        events.append(f"app startup, launched={integration.is_launched()}")
        loop_threads.append(threading.current_thread())
        yield
        events.append(f"app shutdown, launched={integration.is_launched()}")

    app = FastAPI(lifespan=lifespan)
    add_workflow_route(app)
    app.add_middleware(DBOSMiddleware)
    with TestClient(app) as client:
        events.append(f"serving, launched={integration.is_launched()}")
        assert client.post("/run/41").json() == 42
    events.append(f"after, launched={integration.is_launched()}")
    assert events == [
        "app startup, launched=False",
        "serving, launched=True",
        "app shutdown, launched=True",
        "after, launched=False",
    ]
    # Launch ran off the event loop's thread, so the loop was never blocked by it.
    assert len(launch_threads) == 1 and len(loop_threads) == 1
    assert launch_threads[0] is not loop_threads[0]


def test_app_that_launches_dbos_itself_is_not_launched_twice(configured: DBOSConfig) -> None:
    launches: list[bool] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        launches.append(integration.is_launched())
        DBOS.launch()
        yield
        # The app owns DBOS here: it is still running during the app's shutdown.
        launches.append(integration.is_launched())

    app = FastAPI(lifespan=lifespan)
    add_workflow_route(app)
    app.add_middleware(DBOSMiddleware)
    executor_before = DBOS.executor_id
    with TestClient(app) as client:
        assert client.post("/run/1").json() == 2
    assert launches == [False, True]
    # The middleware did not destroy what it did not launch.
    assert integration.is_launched()
    assert DBOS.executor_id == executor_before


def test_launched_before_the_server_starts(dbos: type[DBOS]) -> None:
    # The seeds' pattern: DBOS.launch() in main, then uvicorn.run(app).
    app = FastAPI()
    add_workflow_route(app)
    app.add_middleware(DBOSMiddleware)
    with TestClient(app) as client:
        assert client.post("/run/5").json() == 6
    assert integration.is_launched()


def test_middleware_config_allows_repeated_lifespans(dbos_config: DBOSConfig) -> None:
    DBOS.destroy()
    app = FastAPI()
    add_workflow_route(app)
    app.add_middleware(DBOSMiddleware, config=dbos_config)
    try:
        for x in (1, 2):
            assert not integration.is_configured()
            with TestClient(app) as client:
                # The second lifespan relaunches on the same database: the key finds run 1.
                response = client.post(f"/run/{x}", headers={"dbos-idempotency-key": "rep"})
                assert response.json() == 2
            assert not integration.is_launched()
    finally:
        DBOS.destroy()


def test_startup_fails_clearly_without_configuration() -> None:
    DBOS.destroy()
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        events.append("startup")
        try:
            yield
        finally:
            events.append("cleanup")

    app = FastAPI(lifespan=lifespan)
    app.add_middleware(DBOSMiddleware)
    with pytest.raises(DBOSException, match=r"DBOS is not configured"), TestClient(app):
        pass
    # The app's own lifespan was unwound, so its resources were released.
    assert events == ["startup", "cleanup"]
    assert not integration.is_configured()


def test_launch_false_leaves_dbos_alone(configured: DBOSConfig) -> None:
    app = FastAPI()
    app.add_middleware(DBOSMiddleware, launch=False)
    with TestClient(app):
        assert not integration.is_launched()
    assert integration.is_configured()
