"""The app the uvicorn tests run in a real server process (see test_uvicorn.py).

Environment: DBOS_SYSTEM_DATABASE_URL (the system database) and UVICORN_TEST_DIR, where
steps append to ``log`` and where ``release-<order>`` files let the ``ship`` step finish.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection, Request

from dbos_core import DBOS, DBOSConfig
from dbos_fastapi import DBOSMiddleware, install_exception_handlers

WORK = Path(os.environ["UVICORN_TEST_DIR"])
LOG = WORK / "log"


def log(line: str) -> None:
    with LOG.open("a") as f:
        f.write(line + "\n")


@DBOS.step()
def reserve(order: str) -> str:
    log(f"reserve {order}")
    return f"reserved {order}"


@DBOS.step()
def ship(order: str) -> str:
    log(f"ship-waiting {order}")
    # The test decides when shipping may finish (it kills the server meanwhile).
    while not (WORK / f"release-{order}").exists():
        time.sleep(0.02)
    log(f"ship {order}")
    return f"shipped {order}"


@DBOS.workflow()
def order_workflow(order: str) -> dict[str, Any]:
    return {
        "workflow_id": DBOS.workflow_id,
        "reserved": reserve(order),
        "shipped": ship(order),
        "user": DBOS.authenticated_user,
    }


class HeaderAuth(AuthenticationBackend):
    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SimpleUser] | None:
        name = conn.headers.get("x-user")
        if name is None:
            return None
        return AuthCredentials(conn.headers.get("x-roles", "").split(",")), SimpleUser(name)


app = FastAPI()
install_exception_handlers(app)


@app.get("/health")
def health() -> str:
    return "ok"


@app.post("/orders/{order}")
def place_order(order: str, request: Request) -> dict[str, Any]:
    log(f"request {order} {request.headers.get('dbos-idempotency-key')}")
    return DBOS.start_workflow(order_workflow, order).get_result()


@app.post("/orders/{order}/start")
async def start_order(order: str) -> str:
    handle = await DBOS.start_workflow_async(order_workflow, order)
    return handle.get_workflow_id()


@app.get("/workflows/{workflow_id}")
async def workflow_status(workflow_id: str) -> dict[str, Any]:
    status = await (await DBOS.retrieve_workflow_async(workflow_id)).get_status()
    return {
        "status": status.status,
        "user": status.authenticated_user,
        "roles": status.authenticated_roles,
    }


@app.get("/workflows/{workflow_id}/result")
async def workflow_result(workflow_id: str) -> Any:
    return await (await DBOS.retrieve_workflow_async(workflow_id)).get_result()


config: DBOSConfig = {
    "name": "uvicorn-test",
    "system_database_url": os.environ["DBOS_SYSTEM_DATABASE_URL"],
    "notification_poll_interval": 0.05,
}
app.add_middleware(AuthenticationMiddleware, backend=HeaderAuth())
app.add_middleware(DBOSMiddleware, config=config)
