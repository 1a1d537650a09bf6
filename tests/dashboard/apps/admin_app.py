"""An app with no web framework: the dashboard is the admin server's, behind its token.

``python -m tests.dashboard.apps.admin_app`` with DASH_DB_URL, DASH_ADMIN_PORT and
DASH_ADMIN_TOKEN in the environment; stops on SIGINT or SIGTERM.
"""

from __future__ import annotations

import os
import signal
import threading

from dbos_core import DBOS

from . import workflows  # noqa: F401  (registers the workflows)


def main() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    DBOS(
        config={
            "name": "dash-admin",
            "system_database_url": os.environ["DASH_DB_URL"],
            "run_admin_server": True,
            "admin_port": int(os.environ["DASH_ADMIN_PORT"]),
            "admin_token": os.environ["DASH_ADMIN_TOKEN"],
            "application_version": "dash-test",
        }
    )
    DBOS.launch()
    stop.wait()
    DBOS.destroy()


if __name__ == "__main__":
    main()
