"""DBOSFlask with Flask's test client: configuration, lifecycle, keys, users, errors."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, Response, jsonify, request, stream_with_context

from dbos_core import DBOS, DBOSConfig
from dbos_core import integration as seam
from dbos_core.error import DBOSConfigurationError, DBOSInitializationError
from dbos_flask import DBOSFlask

calls: dict[str, int] = {}
calls_lock = threading.Lock()
gate = threading.Event()
after_response: list[str] = []


@DBOS.step()
def flask_count_step(tag: str) -> str:
    with calls_lock:
        calls[tag] = calls.get(tag, 0) + 1
    return tag


@DBOS.workflow()
def flask_work(tag: str) -> dict[str, Any]:
    flask_count_step(tag)
    return {
        "workflow_id": DBOS.workflow_id,
        "user": DBOS.authenticated_user,
        "roles": DBOS.authenticated_roles,
        "request_id": DBOS.request_id,
    }


@DBOS.workflow()
def flask_gated_work(tag: str) -> str:
    gate.wait(10)
    flask_count_step(tag)
    return tag


def make_app(config: DBOSConfig | None = None, **extension_kwargs: Any) -> tuple[Flask, DBOSFlask]:
    app = Flask("flask_tests")
    if config is not None:
        app.config["DBOS_CONFIG"] = config
    dbos = DBOSFlask(**extension_kwargs)
    dbos.init_app(app)

    @app.post("/work/<tag>")
    def work(tag: str) -> Any:
        return jsonify(DBOS.start_workflow(flask_work, tag).get_result())

    @app.post("/two/<tag>")
    def two(tag: str) -> Any:
        first = DBOS.start_workflow(flask_work, tag).get_workflow_id()
        second = DBOS.start_workflow(flask_work, tag + "-b").get_workflow_id()
        return jsonify([first, second])

    @app.post("/gated/<tag>")
    def gated(tag: str) -> Any:
        handle = DBOS.start_workflow(flask_gated_work, tag)
        return jsonify({"workflow_id": handle.get_workflow_id(), "result": handle.get_result()})

    @app.post("/stream/<tag>")
    def stream(tag: str) -> Response:
        def body() -> Iterator[str]:
            # Runs after the view returned: the request's key must not name it.
            yield DBOS.start_workflow(flask_work, tag).get_workflow_id()

        return Response(stream_with_context(body()), mimetype="text/plain")

    @app.post("/plain-stream/<tag>")
    def plain_stream(tag: str) -> Response:
        def body() -> Iterator[str]:
            yield DBOS.start_workflow(flask_work, tag).get_workflow_id()

        return Response(body(), mimetype="text/plain")

    @app.post("/on-close/<tag>")
    def on_close(tag: str) -> Response:
        response = jsonify({"ok": True})
        response.call_on_close(
            lambda: after_response.append(DBOS.start_workflow(flask_work, tag).get_workflow_id())
        )
        return response

    @app.post("/async/<tag>")
    async def async_work(tag: str) -> Any:
        handle = await DBOS.start_workflow_async(flask_work, tag)
        return jsonify(await handle.get_result())

    @app.get("/status/<workflow_id>")
    def status(workflow_id: str) -> Any:
        s = DBOS.retrieve_workflow(workflow_id).get_status()
        return jsonify({"status": s.status, "user": s.authenticated_user})

    @app.get("/nothing")
    def nothing() -> Any:
        return jsonify({"ok": True})

    return app, dbos


@pytest.fixture()
def clean_dbos() -> Iterator[None]:
    DBOS.destroy()
    calls.clear()
    gate.clear()
    after_response.clear()
    yield
    gate.set()
    DBOS.destroy()


@pytest.fixture()
def app_and_ext(clean_dbos: None, dbos_config: DBOSConfig) -> tuple[Flask, DBOSFlask]:
    return make_app(dbos_config)


# -- configuration and lifecycle -------------------------------------------------------


def test_init_app_configures_only(clean_dbos: None, tmp_path: Path) -> None:
    db_file = tmp_path / "never.sqlite"
    threads_before = {t.ident for t in threading.enumerate()}
    app = Flask("cfg")
    app.config["DBOS_SYSTEM_DATABASE_URL"] = f"sqlite:///{db_file}"
    app.config["DBOS_NAME"] = "cfg-app"
    ext = DBOSFlask(app)
    state = app.extensions["dbos"]
    assert state.extension is ext
    assert state.config == {"name": "cfg-app", "system_database_url": f"sqlite:///{db_file}"}
    # No DBOS instance, no thread, no database file: init_app did no I/O.
    assert not seam.is_configured()
    assert {t.ident for t in threading.enumerate()} == threads_before
    assert not db_file.exists()
    assert "dbos" in app.cli.commands


def test_config_sources_merge_and_name_defaults_to_app(clean_dbos: None, db_url: str) -> None:
    app = Flask("my app")
    app.config["DBOS_CONFIG"] = {"system_database_url": db_url, "application_version": "v1"}
    app.config["DBOS_APPLICATION_VERSION"] = "v2"
    DBOSFlask(app)
    config = app.extensions["dbos"].config
    assert config == {"name": "my_app", "system_database_url": db_url, "application_version": "v2"}


def test_bad_configuration_is_refused_at_init(clean_dbos: None) -> None:
    app = Flask("bad")
    app.config["DBOS_SYSTEM_DATABASE_URL"] = "not a url"
    with pytest.raises(DBOSConfigurationError, match="not a database URL"):
        DBOSFlask(app)
    typo = Flask("typo")
    typo.config["DBOS_SYSTEM_DATABSE_URL"] = "sqlite:///x.sqlite"
    with pytest.raises(DBOSConfigurationError, match="DBOS_SYSTEM_DATABSE_URL"):
        DBOSFlask(typo)
    twice = Flask("twice")
    DBOSFlask(twice)
    with pytest.raises(DBOSInitializationError, match="already initialised"):
        DBOSFlask(twice)


def test_application_factory_and_lazy_launch(
    app_and_ext: tuple[Flask, DBOSFlask], dbos_config: DBOSConfig
) -> None:
    app, ext = app_and_ext
    assert not seam.is_launched()
    client = app.test_client()
    assert client.get("/nothing").status_code == 200
    assert seam.is_launched()
    # Launching again (explicitly, or by later requests) is a no-op on the same runtime.
    ext.launch(app)
    client.get("/nothing")
    assert seam.is_launched()
    body = client.post("/work/a").get_json()
    assert body["user"] is None and calls == {"a": 1}


def test_concurrent_first_requests_launch_once(
    app_and_ext: tuple[Flask, DBOSFlask], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, _ = app_and_ext
    launches: list[int] = []
    real_launch = seam.launch

    def counting_launch() -> None:
        launches.append(1)
        real_launch()

    monkeypatch.setattr(seam, "launch", counting_launch)
    results: list[int] = []

    def hit() -> None:
        results.append(app.test_client().get("/nothing").status_code)

    threads = [threading.Thread(target=hit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 8
    assert len(launches) == 1


def test_explicit_launch_without_lazy(clean_dbos: None, dbos_config: DBOSConfig) -> None:
    app, ext = make_app(dbos_config, launch_on_first_request=False)
    client = app.test_client()
    # Not launched and not lazily launched: the DBOS error becomes a JSON response.
    resp = client.post("/work/x")
    assert resp.status_code == 500
    assert resp.get_json()["error"] == "NOT_LAUNCHED"
    ext.launch(app)
    assert client.post("/work/x").status_code == 200


def test_dbos_launched_before_a_fork_is_refused_in_the_child(
    clean_dbos: None, dbos_config: DBOSConfig
) -> None:
    app, _ = make_app()  # no DBOS_* keys: uses the DBOS configured below
    DBOS(config=dbos_config)
    DBOS.launch()  # launched by the application itself, not by the extension
    pid = os.fork()
    if pid == 0:  # the child: only in-memory checks, then leave at once
        code = 1
        try:
            app.extensions["dbos"].launch()
        except DBOSInitializationError as exc:
            code = 0 if "before it forked" in str(exc) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # The parent's DBOS is untouched and the extension adopts it.
    app.extensions["dbos"].launch()
    assert app.test_client().post("/work/f").status_code == 200


def test_launch_without_any_configuration_says_what_to_do(clean_dbos: None) -> None:
    DBOS(config={"name": "preconfigured", "system_database_url": "sqlite:///unused.sqlite"})
    app, ext = make_app()  # adopts the DBOS configured above...
    assert app.extensions["dbos"].config is None
    DBOS.destroy()  # ...which is gone by the time the app launches
    with pytest.raises(DBOSInitializationError, match="not configured"):
        ext.launch(app)


def test_second_app_with_other_config_cannot_take_over(
    app_and_ext: tuple[Flask, DBOSFlask], tmp_path: Path
) -> None:
    app, _ = app_and_ext
    app.test_client().get("/nothing")
    other, _ = make_app({"name": "other", "system_database_url": f"sqlite:///{tmp_path}/o.sqlite"})
    resp = other.test_client().get("/nothing")
    assert resp.status_code == 500
    assert resp.get_json()["error"] == "INITIALIZATION_ERROR"


# -- idempotency keys ---------------------------------------------------------------


def test_duplicate_key_runs_work_once(app_and_ext: tuple[Flask, DBOSFlask]) -> None:
    app, _ = app_and_ext
    client = app.test_client()
    headers = {"dbos-idempotency-key": "order-1"}
    first = client.post("/work/t", headers=headers).get_json()
    second = client.post("/work/t", headers=headers).get_json()
    assert first["workflow_id"] == second["workflow_id"] == "order-1"
    assert calls == {"t": 1}


def test_concurrent_duplicate_keys_run_work_once(app_and_ext: tuple[Flask, DBOSFlask]) -> None:
    app, _ = app_and_ext
    app.test_client().get("/nothing")
    results: list[dict[str, Any]] = []

    def post() -> None:
        resp = app.test_client().post("/gated/g", headers={"dbos-idempotency-key": "same"})
        results.append(resp.get_json())

    threads = [threading.Thread(target=post) for _ in range(6)]
    for t in threads:
        t.start()
    # Every request is in flight while the one execution is held at the gate.
    gate.set()
    for t in threads:
        t.join()
    assert [r["workflow_id"] for r in results] == ["same"] * 6
    assert [r["result"] for r in results] == ["g"] * 6
    assert calls == {"g": 1}


def test_custom_header(clean_dbos: None, dbos_config: DBOSConfig) -> None:
    app, _ = make_app(dbos_config, idempotency_header="X-Order-Key")
    client = app.test_client()
    assert client.post("/work/c", headers={"X-Order-Key": "k1"}).get_json()["workflow_id"] == "k1"
    other = client.post("/work/c", headers={"dbos-idempotency-key": "k2"}).get_json()
    assert other["workflow_id"] != "k2"


def test_header_setting_from_app_config(clean_dbos: None, dbos_config: DBOSConfig) -> None:
    app = Flask("hdr")
    app.config["DBOS_CONFIG"] = dbos_config
    app.config["DBOS_IDEMPOTENCY_HEADER"] = "Idem"
    DBOSFlask(app)
    assert app.extensions["dbos"].idempotency_header == "Idem"


def test_key_names_only_the_first_workflow(app_and_ext: tuple[Flask, DBOSFlask]) -> None:
    app, _ = app_and_ext
    ids = app.test_client().post("/two/w", headers={"dbos-idempotency-key": "k"}).get_json()
    assert ids[0] == "k" and ids[1] != "k"


def test_no_key_leaks_into_next_request_on_same_thread(
    app_and_ext: tuple[Flask, DBOSFlask],
) -> None:
    app, _ = app_and_ext
    client = app.test_client()
    # A keyed request that starts no workflow: its unused key must die with it.
    client.get("/nothing", headers={"dbos-idempotency-key": "unused"})
    after_unused = client.post("/work/n1").get_json()["workflow_id"]
    assert after_unused != "unused"
    client.post("/work/n2", headers={"dbos-idempotency-key": "used"})
    after_used = client.post("/work/n3").get_json()["workflow_id"]
    assert after_used not in ("used", after_unused)
    assert seam.current_request() is None


def test_key_scope_ends_when_view_raises(app_and_ext: tuple[Flask, DBOSFlask]) -> None:
    app, _ = app_and_ext

    @app.get("/boom")
    def boom() -> Any:
        raise RuntimeError("boom")

    app.config["PROPAGATE_EXCEPTIONS"] = False
    client = app.test_client()
    assert client.get("/boom", headers={"dbos-idempotency-key": "boomkey"}).status_code == 500
    assert seam.current_request() is None
    assert client.post("/work/z").get_json()["workflow_id"] != "boomkey"


def test_streamed_body_does_not_get_the_key(app_and_ext: tuple[Flask, DBOSFlask]) -> None:
    app, _ = app_and_ext
    resp = app.test_client().post("/stream/s", headers={"dbos-idempotency-key": "streamkey"})
    workflow_id = resp.get_data(as_text=True)
    assert workflow_id and workflow_id != "streamkey"
    assert DBOS.retrieve_workflow(workflow_id).get_result()["workflow_id"] == workflow_id


def test_plain_streamed_body_does_not_get_the_key(app_and_ext: tuple[Flask, DBOSFlask]) -> None:
    app, _ = app_and_ext
    resp = app.test_client().post("/plain-stream/q", headers={"dbos-idempotency-key": "plain"})
    workflow_id = resp.get_data(as_text=True)
    assert workflow_id and workflow_id != "plain"


def test_work_started_when_the_response_closes_does_not_get_the_key(
    app_and_ext: tuple[Flask, DBOSFlask],
) -> None:
    app, _ = app_and_ext
    resp = app.test_client().post("/on-close/c", headers={"dbos-idempotency-key": "closekey"})
    assert resp.status_code == 200
    resp.close()
    assert len(after_response) == 1 and after_response[0] != "closekey"


def test_async_view_uses_the_key_and_user(clean_dbos: None, dbos_config: DBOSConfig) -> None:
    app, _ = make_app(dbos_config, user_resolver=lambda: ("amy", ["r"]))
    body = app.test_client().post("/async/a", headers={"dbos-idempotency-key": "akey"}).get_json()
    assert body["workflow_id"] == "akey" and body["user"] == "amy" and body["roles"] == ["r"]
    assert calls == {"a": 1}


def test_request_id_header_is_recorded(app_and_ext: tuple[Flask, DBOSFlask]) -> None:
    app, _ = app_and_ext
    body = app.test_client().post("/work/r", headers={"X-Request-ID": "req-7"}).get_json()
    assert body["request_id"] == "req-7"


# -- authenticated user -----------------------------------------------------------------


def test_resolver_user_and_roles_are_recorded_lazily(
    clean_dbos: None, dbos_config: DBOSConfig
) -> None:
    resolved: list[str] = []

    def resolver() -> tuple[str, list[str]] | None:
        user = request.headers.get("X-User")
        resolved.append(str(user))
        return None if user is None else (user, ["admin", "ops"])

    app, _ = make_app(dbos_config, user_resolver=resolver)
    client = app.test_client()
    client.get("/nothing", headers={"X-User": "alice"})
    assert resolved == []  # no workflow started: never resolved
    body = client.post("/work/u", headers={"X-User": "alice"}).get_json()
    assert body["user"] == "alice" and body["roles"] == ["admin", "ops"]
    status = client.get(f"/status/{body['workflow_id']}").get_json()
    assert status["user"] == "alice"
    anonymous = client.post("/work/v").get_json()
    assert anonymous["user"] is None and anonymous["roles"] is None
    assert resolved == ["alice", "None"]


def test_resolver_may_return_a_plain_name(clean_dbos: None, dbos_config: DBOSConfig) -> None:
    app, _ = make_app(dbos_config, user_resolver=lambda: "bob")
    body = app.test_client().post("/work/p").get_json()
    assert body["user"] == "bob" and body["roles"] is None


def test_flask_login_current_user(clean_dbos: None, dbos_config: DBOSConfig) -> None:
    flask_login = pytest.importorskip("flask_login")

    class User(flask_login.UserMixin):  # type: ignore[misc]
        def __init__(self, user_id: str) -> None:
            self.id = user_id
            self.roles = ["member"]

    app, _ = make_app(dbos_config)
    app.secret_key = "test"
    manager = flask_login.LoginManager(app)
    manager.user_loader(lambda user_id: User(user_id))

    @app.post("/login/<name>")
    def login(name: str) -> Any:
        flask_login.login_user(User(name))
        return "ok"

    client = app.test_client()
    assert client.post("/work/anon").get_json()["user"] is None
    client.post("/login/carol")
    body = client.post("/work/in").get_json()
    assert body["user"] == "carol" and body["roles"] == ["member"]


# -- errors ----------------------------------------------------------------------------


def test_dbos_errors_become_json_responses(app_and_ext: tuple[Flask, DBOSFlask]) -> None:
    app, _ = app_and_ext
    resp = app.test_client().get("/status/no-such-workflow")
    assert resp.status_code == 404
    body = resp.get_json()
    assert body["error"] == "NONEXISTENT_WORKFLOW"
    assert body["workflow_id"] == "no-such-workflow"
    assert "no-such-workflow" in body["message"]


def test_error_handlers_can_be_disabled(clean_dbos: None, dbos_config: DBOSConfig) -> None:
    app = Flask("noerr")
    app.config["DBOS_CONFIG"] = dbos_config
    app.config["DBOS_ERROR_HANDLERS"] = False
    app.config["PROPAGATE_EXCEPTIONS"] = False
    DBOSFlask(app)

    @app.get("/missing")
    def missing() -> Any:
        return str(DBOS.retrieve_workflow("nope"))

    resp = app.test_client().get("/missing")
    assert resp.status_code == 500 and resp.get_json() is None
