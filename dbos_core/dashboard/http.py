"""The dashboard's own request and response: what every mount translates to and from.

A mount (the admin server, a Starlette app, a Flask blueprint, Django URLs) turns its
framework's request into a ``DashboardRequest``, calls ``Dashboard.handle`` and turns
the ``DashboardResponse`` back, streaming ``response.stream`` when it is set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

if TYPE_CHECKING:
    from .live import LiveStream

# Headers on every dashboard page: scripts and styles from the dashboard only, no
# framing, no referrer leaving the site.
SECURITY_HEADERS = (
    (
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
        "form-action 'self'; base-uri 'none'",
    ),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    ("X-Content-Type-Options", "nosniff"),
)


@dataclass
class DashboardRequest:
    """One request, as the dashboard needs it.

    ``path`` is relative to where the dashboard is mounted ("/workflows/abc");
    ``base_path`` is that mount point as the browser sees it ("/dbos"), for links.
    ``headers`` has lower-case names; only ``host``, ``origin``, ``referer`` and
    ``sec-fetch-site`` are read. ``framework_csrf`` is set by mounts whose framework
    checks CSRF itself (Django): ``csrf_fields`` are then its hidden form fields, and
    the dashboard's own double-submit check is skipped.
    """

    method: str
    path: str
    base_path: str
    query_string: str = ""
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    cookies: Mapping[str, str] = field(default_factory=dict)
    viewer: str | None = None
    # False for viewers who may look but not cancel, resume or fork.
    can_act: bool = True
    framework_csrf: bool = False
    csrf_fields: Mapping[str, str] = field(default_factory=dict)

    def query(self) -> dict[str, str]:
        """The query string's parameters (the last value of each)."""
        return {k: v[-1] for k, v in parse_qs(self.query_string, keep_blank_values=True).items()}

    def form(self) -> dict[str, str]:
        """An ``application/x-www-form-urlencoded`` body's fields (the last value of each)."""
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError:
            return {}
        return {k: v[-1] for k, v in parse_qs(text, keep_blank_values=True).items()}


@dataclass
class Cookie:
    name: str
    value: str
    path: str
    max_age: int | None = None
    http_only: bool = True
    same_site: str = "Strict"
    secure: bool = False

    def header_value(self) -> str:
        """The ``Set-Cookie`` value (for mounts without a cookie API of their own)."""
        parts = [f"{self.name}={self.value}", f"Path={self.path}", f"SameSite={self.same_site}"]
        if self.max_age is not None:
            parts.append(f"Max-Age={self.max_age}")
        if self.http_only:
            parts.append("HttpOnly")
        if self.secure:
            parts.append("Secure")
        return "; ".join(parts)


@dataclass
class DashboardResponse:
    status: int
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)
    cookies: list[Cookie] = field(default_factory=list)
    # Set for server-sent events: the mount streams it instead of ``body``.
    stream: LiveStream | None = None


def redirect(location: str, status: int = 303) -> DashboardResponse:
    return DashboardResponse(status, b"", headers=[("Location", location)])


def plain(status: int, text: str) -> DashboardResponse:
    return DashboardResponse(status, text.encode(), "text/plain; charset=utf-8")
