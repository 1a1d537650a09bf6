"""Alerts from a Kafka topic, each answered by a durable workflow exactly once.

``create_app()`` configures DBOS from ``app.config`` (``FLASK_DBOS_*`` variables
override); run the consumer with ``flask --app alerts dbos worker``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import Flask

from dbos_flask import DBOSFlask

dbos = DBOSFlask()


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    data_dir = Path(os.environ.get("ALERTS_DATA_DIR", app.instance_path))
    data_dir.mkdir(parents=True, exist_ok=True)
    app.config.update(
        DBOS_NAME="kafka-alerts",
        # The embedded default; set FLASK_DBOS_SYSTEM_DATABASE_URL=postgresql://... in production.
        DBOS_SYSTEM_DATABASE_URL=f"sqlite:///{data_dir / 'alerts.sqlite'}",
    )
    app.config.from_prefixed_env()
    app.config.update(overrides or {})

    from . import responders

    responders.configure(data_dir / "responses.log")
    dbos.init_app(app)
    return app
