"""An order service on Flask whose checkout is a durable workflow.

``create_app()`` is the application factory; ``dbos`` is the extension object,
created once and bound to each app with ``init_app``.
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
    return app
