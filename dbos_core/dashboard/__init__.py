"""A workflow dashboard for operators: server-rendered pages, live by server-sent events.

The core is framework-free: ``Dashboard.handle`` takes a ``DashboardRequest`` and
returns a ``DashboardResponse``. It is served by the admin server (``/dashboard``,
behind its token) and mounted by each adapter behind its framework's authentication:
``dbos_fastapi.dashboard_app``, ``dbos_flask.dashboard_blueprint`` and
``dbos_django.dashboard_urls``. See the README's dashboard section.
"""

from __future__ import annotations

from .app import Dashboard
from .http import Cookie, DashboardRequest, DashboardResponse
from .live import LiveStream

__all__ = ["Cookie", "Dashboard", "DashboardRequest", "DashboardResponse", "LiveStream"]
