"""An order service on Flask whose checkout is a durable workflow.

``create_app()`` is the application factory; ``dbos`` is the extension object,
created once and bound to each app with ``init_app``.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

from flask import Flask, abort, request

from dbos_flask import DBOSFlask, metrics_blueprint

dbos = DBOSFlask()


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    data_dir = Path(os.environ.get("ORDERS_DATA_DIR", app.instance_path))
    data_dir.mkdir(parents=True, exist_ok=True)
    app.config.update(
        DBOS_NAME="flask-orders",
        # The embedded default; set FLASK_DBOS_SYSTEM_DATABASE_URL=postgresql://... in production.
        DBOS_SYSTEM_DATABASE_URL=f"sqlite:///{data_dir / 'orders.sqlite'}",
        ORDERS_LEDGER=str(data_dir / "ledger.log"),
    )
    app.config.from_prefixed_env()  # FLASK_DBOS_* environment variables override
    app.config.update(overrides or {})

    from . import workflows
    from .views import orders

    workflows.configure(Path(app.config["ORDERS_LEDGER"]))
    dbos.init_app(app)
    app.register_blueprint(orders)
    if app.config.get("DBOS_ENABLE_OTLP"):
        # Request spans (honouring an inbound traceparent): the checkout a request
        # enqueues is a child of the request's span, wherever a worker runs it.
        from opentelemetry.instrumentation.flask import FlaskInstrumentor

        FlaskInstrumentor().instrument_app(app)
    if app.config.get("DBOS_ENABLE_METRICS"):
        app.register_blueprint(metrics_blueprint(protect=metrics_token_required))
    return app


def metrics_token_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Stand-in for real operator authentication: a bearer token from the environment."""

    @wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        token = os.environ.get("ORDERS_METRICS_TOKEN", "")
        given = request.headers.get("Authorization", "")
        if not token or not hmac.compare_digest(given, f"Bearer {token}"):
            abort(401)
        return view(*args, **kwargs)

    return checked
