"""For WSGI servers: ``gunicorn -w 2 wsgi:app`` from this directory.

Imported by each gunicorn worker after it forks (no ``--preload``), so every
worker launches its own DBOS and recovers interrupted orders before serving.
With ``--preload``, drop the ``launch`` line: DBOS then launches lazily in each
worker at its first request.
"""

from __future__ import annotations

from flask_orders import create_app, dbos

app = create_app()
dbos.launch(app)
