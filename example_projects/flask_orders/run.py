"""Run the order service on the embedded SQLite defaults with one command:

    python example_projects/flask_orders/run.py

then, in another shell:

    curl -X POST localhost:5000/orders -H 'dbos-idempotency-key: order-1' \
         -H 'Content-Type: application/json' -d '{"items": ["book", "pen"]}'
    curl localhost:5000/orders/order-1

Environment: PORT (default 5000), ORDERS_DATA_DIR (default ./instance beside the
package), FLASK_DBOS_SYSTEM_DATABASE_URL and FLASK_SQLALCHEMY_DATABASE_URI to use
PostgreSQL instead, FLASK_ORDERS_PAYMENT_SECONDS to make payments slow enough to kill
the server in the middle of one.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import flask_migrate

HERE = Path(__file__).resolve().parent
# Runnable from a checkout without installing: the package and the repository root.
sys.path[:0] = [str(HERE), str(HERE.parents[1])]

from flask_orders import create_app, dbos  # noqa: E402


def main() -> None:
    app = create_app()
    with app.app_context():
        flask_migrate.upgrade()  # the app's tables and DBOS's checkpoint table
    # Launch now (not lazily) so orders interrupted by a crash resume at startup.
    dbos.launch(app)
    # SIGTERM exits normally, so DBOS is destroyed cleanly at exit (atexit).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "5000")), threaded=True)


if __name__ == "__main__":
    main()
