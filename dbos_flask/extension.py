"""The ``DBOSFlask`` extension object: configuration, process lifecycle, hooks.

DBOS is one runtime per process, so launching is process-wide: the first app
that launches owns it until ``destroy()`` (or interpreter exit). ``init_app``
only reads configuration: it also runs in the reloader's parent process and in
every ``flask`` CLI command, where no thread may start and no connection open.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, current_app, jsonify

from dbos_core import DBOS, DBOSConfig
from dbos_core import integration as seam
from dbos_core.error import DBOSConfigurationError, DBOSException, DBOSInitializationError

from .requests import UserResolverArg, install_request_hooks

EXTENSION_KEY = "dbos"
CONFIG_PREFIX = "DBOS_"
# Settings of the adapter itself (app.config keys); every other DBOS_* key is a DBOSConfig key.
ADAPTER_SETTINGS = {
    "DBOS_CONFIG": None,
    "DBOS_IDEMPOTENCY_HEADER": seam.DEFAULT_IDEMPOTENCY_HEADER,
    "DBOS_REQUEST_ID_HEADER": seam.DEFAULT_REQUEST_ID_HEADER,
    "DBOS_LAUNCH_ON_FIRST_REQUEST": True,
    "DBOS_ERROR_HANDLERS": True,
}


@dataclass
class DBOSFlaskState:
    """What ``init_app`` stored for one app, in ``app.extensions["dbos"]``."""

    extension: DBOSFlask
    config: DBOSConfig | None
    idempotency_header: str
    request_id_header: str
    launch_on_first_request: bool
    user_resolver: UserResolverArg | None

    def launch(self) -> None:
        """Launch DBOS for this app unless this process runs it already (the seam's guard:
        once per process, never a DBOS launched before a fork, one configuration)."""

        def configure() -> None:
            if self.config is not None:
                DBOS(config=self.config)

        seam.ensure_launched(configure, owner=self, config=self.config)


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", name) or "dbos_flask_app"


def read_app_config(app: Flask, base: DBOSConfig | None) -> DBOSConfig | None:
    """The DBOSConfig of an app: ``base``, then ``DBOS_CONFIG``, then ``DBOS_<KEY>`` keys.

    None when the app configures nothing and DBOS was configured directly with
    ``DBOS(config=...)``; that configuration is then used as it is.
    """
    merged: dict[str, Any] = dict(base or {})
    from_dict = app.config.get("DBOS_CONFIG")
    if from_dict is not None:
        if not isinstance(from_dict, dict):
            raise DBOSConfigurationError(
                f"app.config['DBOS_CONFIG'] must be a DBOSConfig dict, got {type(from_dict).__name__}"
            )
        merged.update(from_dict)
    known = seam.config_keys()
    for key, value in app.config.items():
        if not key.startswith(CONFIG_PREFIX) or key in ADAPTER_SETTINGS:
            continue
        config_key = key[len(CONFIG_PREFIX) :].lower()
        if config_key not in known:
            raise DBOSConfigurationError(
                f"app.config[{key!r}] is not a DBOS setting; use DBOS_<KEY> for a DBOSConfig key "
                f"({', '.join(sorted(k.upper() for k in known))}) or one of "
                f"{', '.join(sorted(ADAPTER_SETTINGS))}"
            )
        if value is not None:
            merged[config_key] = value
    if not merged and seam.is_configured():
        return None
    merged.setdefault("name", _safe_name(app.name))
    seam.validate_config(merged)
    return merged  # type: ignore[return-value]


def _handle_dbos_error(exc: DBOSException) -> tuple[Response, int]:
    status, body = seam.error_response(exc)
    return jsonify(body), status


class DBOSFlask:
    """Durable workflows for a Flask app.

    ``dbos = DBOSFlask(); dbos.init_app(app)`` (application factories) or
    ``DBOSFlask(app)``. Configuration comes from ``app.config`` (see README).
    ``db=`` (a Flask-SQLAlchemy ``SQLAlchemy``) runs ``@DBOS.transaction`` on the app's
    own ``db``, on its default bind or on ``bind_key``.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        config: DBOSConfig | None = None,
        user_resolver: UserResolverArg | None = None,
        idempotency_header: str | None = None,
        launch_on_first_request: bool | None = None,
        db: Any = None,
        bind_key: str | None = None,
    ) -> None:
        self.config = config
        # A flask_sqlalchemy.SQLAlchemy: @DBOS.transaction then runs on it (transactions.py).
        self.db = db
        self.bind_key = bind_key
        self.user_resolver = user_resolver
        self.idempotency_header = idempotency_header
        self.launch_on_first_request = launch_on_first_request
        self.app = app
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Read configuration and register hooks, error handlers and the CLI. No I/O."""
        if EXTENSION_KEY in app.extensions:
            raise DBOSInitializationError(f"DBOSFlask is already initialised on app {app.name!r}")

        def setting(key: str, override: Any) -> Any:
            return override if override is not None else app.config.get(key, ADAPTER_SETTINGS[key])

        header = setting("DBOS_IDEMPOTENCY_HEADER", self.idempotency_header)
        if not isinstance(header, str) or not header:
            raise DBOSConfigurationError(
                f"DBOS_IDEMPOTENCY_HEADER must be a header name, got {header!r}"
            )
        state = DBOSFlaskState(
            extension=self,
            config=read_app_config(app, self.config),
            idempotency_header=header,
            request_id_header=setting("DBOS_REQUEST_ID_HEADER", None),
            launch_on_first_request=seam.setting_bool(
                setting("DBOS_LAUNCH_ON_FIRST_REQUEST", self.launch_on_first_request),
                "DBOS_LAUNCH_ON_FIRST_REQUEST",
            ),
            user_resolver=self.user_resolver,
        )
        if self.db is not None:
            from .transactions import install

            install(app, self.db, self.bind_key, dict(state.config or {}))
        app.extensions[EXTENSION_KEY] = state
        install_request_hooks(app, state)
        if seam.setting_bool(app.config.get("DBOS_ERROR_HANDLERS", True), "DBOS_ERROR_HANDLERS"):
            app.register_error_handler(DBOSException, _handle_dbos_error)
        from .cli import dbos_cli

        app.cli.add_command(dbos_cli)

    def state(self, app: Flask | None = None) -> DBOSFlaskState:
        target = app if app is not None else (self.app or current_app._get_current_object())  # type: ignore[attr-defined]
        state = target.extensions.get(EXTENSION_KEY)
        if state is None:
            raise DBOSInitializationError(
                f"DBOSFlask.init_app() was not called on app {target.name!r}"
            )
        return state  # type: ignore[no-any-return]

    def launch(self, app: Flask | None = None) -> None:
        """Launch DBOS in this process now (recovers pending workflows); idempotent.

        Call it in the serving process only (``wsgi.py``, gunicorn's ``post_fork``),
        never in a process that forks workers afterwards.
        """
        self.state(app).launch()

    def destroy(self) -> None:
        """Stop DBOS in this process (also done automatically at exit)."""
        seam.destroy_launched()


def state_of(app: Flask) -> DBOSFlaskState:
    state = app.extensions.get(EXTENSION_KEY)
    if not isinstance(state, DBOSFlaskState):
        raise DBOSInitializationError(f"DBOSFlask.init_app() was not called on app {app.name!r}")
    return state
