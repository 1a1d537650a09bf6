"""What every dashboard page is rendered with, and the page frame around it."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from ..error import DBOSException
from .html import Markup, esc, hidden_fields, join, render, url
from .http import SECURITY_HEADERS, DashboardRequest, DashboardResponse

if TYPE_CHECKING:
    from ..runtime.runtime import Runtime
    from ..serialization import Serializer

NAV = (
    ("workflows", "Workflows"),
    ("queues", "Queues"),
    ("schedules", "Schedules"),
    ("health", "Health"),
)


class DashboardInputError(DBOSException):
    """A filter, cursor or form field the dashboard cannot use (answered with a 400)."""

    code = "BAD_REQUEST"
    http_status = 400


@functools.cache
def asset_version() -> str:
    """Changes whenever a static file changes, so browsers may cache them for long."""
    digest = hashlib.sha256()
    folder = resources.files(__package__).joinpath("static")
    for name in sorted(STATIC_FILES):
        digest.update(folder.joinpath(name).read_bytes())
    return digest.hexdigest()[:12]


STATIC_FILES = {
    "dashboard.css": "text/css; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "uPlot.iife.min.js": "text/javascript; charset=utf-8",
    "uPlot.min.css": "text/css; charset=utf-8",
}


@dataclass
class Page:
    """One request's rendering context."""

    rt: Runtime
    request: DashboardRequest
    csrf: Mapping[str, str]
    serializer: Serializer | None
    live: bool

    @property
    def base(self) -> str:
        return self.request.base_path.rstrip("/")

    def url(self, *segments: str, **query: Any) -> str:
        return url(self.base, *segments, **query)

    def static(self, name: str) -> str:
        return self.url("static", name, v=asset_version())

    def form_fields(self) -> Markup:
        return hidden_fields(self.csrf)

    def frame(
        self,
        title: str,
        active: str,
        content: Markup,
        *,
        status: int = 200,
        notice: str | None = None,
        error: str | None = None,
        extra_head: Markup = Markup(""),
        live_url: str | None = None,
    ) -> DashboardResponse:
        current = Markup(' aria-current="page"')
        nav = join(
            Markup(
                f'<li><a href="{esc(self.url(key))}"'
                f"{current if key == active else ''}>{esc(label)}</a></li>"
            )
            for key, label in NAV
        )
        messages = Markup("")
        if notice:
            messages = Markup(f'<p class="notice" role="status">{esc(notice)}</p>')
        if error:
            messages = Markup(f'<p class="problem" role="alert">{esc(error)}</p>')
        viewer = self.request.viewer
        body = render(
            "layout.html",
            title=title,
            css=self.static("dashboard.css"),
            js=self.static("dashboard.js"),
            extra_head=extra_head,
            home=self.url("workflows"),
            nav=nav,
            viewer=Markup(f'<span class="viewer">{esc(viewer)}</span>') if viewer else "",
            app=self.rt.config.name,
            messages=messages,
            content=content,
            live_url=live_url or "",
        )
        return DashboardResponse(status, body.encode("utf-8"), headers=list(SECURITY_HEADERS))
