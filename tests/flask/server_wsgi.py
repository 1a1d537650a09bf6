"""The WSGI entry point that launches DBOS at import, in each gunicorn worker.

Without ``--preload`` gunicorn imports this module after forking, so every worker
launches (and recovers) its own DBOS before it serves a request.
"""

from __future__ import annotations

import os

from tests.flask.server_app import append, create_app, dbos

app = create_app()
dbos.launch(app)
append("launched", str(os.getpid()))
