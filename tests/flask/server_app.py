"""A Flask app that the server and CLI tests run in child processes.

Configured from the environment the way a deployment would be:
``FLASK_DBOS_SYSTEM_DATABASE_URL`` (read by ``app.config.from_prefixed_env()``)
and ``MARKER_DIR``, where steps append lines so the tests can count executions.
The user comes from an ``X-User`` header through a resolver.

Serve it with ``gunicorn 'tests.flask.server_app:create_app()'`` (DBOS launches
lazily in each worker) or ``gunicorn tests.flask.server_wsgi:app`` (launches
at import in each worker, so recovery runs before the first request).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from flask import Flask, jsonify, request

from dbos_core import DBOS
from dbos_core import integration as seam
from dbos_flask import DBOSFlask


def marker_dir() -> Path:
    return Path(os.environ["MARKER_DIR"])


def append(name: str, text: str) -> None:
    with open(marker_dir() / name, "a") as f:
        f.write(text + "\n")
        f.flush()
        os.fsync(f.fileno())


def header_user() -> tuple[str, list[str]] | None:
    user = request.headers.get("X-User")
    return None if user is None else (user, ["customer"])


dbos = DBOSFlask(user_resolver=header_user)


@DBOS.step()
def flask_record_work(tag: str) -> str:
    append("work", f"{tag} {os.getpid()}")
    # Long enough that concurrent duplicates overlap with the running execution.
    time.sleep(0.2)
    return tag


@DBOS.workflow()
def flask_keyed_work(tag: str) -> dict[str, Any]:
    flask_record_work(tag)
    return {"workflow_id": DBOS.workflow_id, "user": DBOS.authenticated_user}


@DBOS.step()
def flask_crash_step_one(x: int) -> int:
    append("step1", str(os.getpid()))
    return x + 1


@DBOS.step()
def flask_crash_step_two(x: int) -> int:
    append("step2", str(os.getpid()))
    while not (marker_dir() / "release").exists():
        time.sleep(0.05)  # parked here until the test kills the server
    return x * 10


@DBOS.workflow()
def flask_crash_workflow(x: int) -> int:
    b = flask_crash_step_two(flask_crash_step_one(x))
    append("done", f"{os.getpid()} {b}")
    return b


def create_app() -> Flask:
    app = Flask("flask_server_test")
    app.config["DBOS_NAME"] = "flask-server-test"
    app.config["DBOS_APPLICATION_VERSION"] = "flask-server-test-v1"
    app.config["DBOS_NOTIFICATION_POLL_INTERVAL"] = 0.05
    app.config.from_prefixed_env()
    dbos.init_app(app)

    @app.post("/work/<tag>")
    def work(tag: str) -> Any:
        result = DBOS.start_workflow(flask_keyed_work, tag).get_result()
        return jsonify(
            {
                **result,
                "pid": os.getpid(),
                "thread": threading.get_ident(),
                "launched_pid": seam.launched_in_pid(),
            }
        )

    @app.post("/crash")
    def crash() -> Any:
        return jsonify(
            {"workflow_id": DBOS.start_workflow(flask_crash_workflow, 4).get_workflow_id()}
        )

    @app.get("/workflows/<workflow_id>")
    def workflow_status(workflow_id: str) -> Any:
        status = DBOS.retrieve_workflow(workflow_id).get_status()
        return jsonify({"status": status.status, "user": status.authenticated_user})

    @app.get("/health")
    def health() -> Any:
        return jsonify({"pid": os.getpid()})

    return app
