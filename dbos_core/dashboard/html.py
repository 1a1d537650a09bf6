"""HTML for the dashboard: escaped by default, templates from package files.

Every value put into a page goes through ``esc`` unless it is already ``Markup``
(HTML this module or a template built). Templates are ``string.Template`` files in
``templates/`` (``$name`` placeholders, ``$$`` for a dollar sign); loops and
conditions live in the Python that fills them, so a template cannot forget to
escape.
"""

from __future__ import annotations

import functools
import html
import string
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from urllib.parse import quote, urlencode


class Markup(str):
    """Text that is already HTML (escaped or built here)."""

    __slots__ = ()


def esc(value: Any) -> Markup:
    if isinstance(value, Markup):
        return value
    if value is None:
        return Markup("")
    return Markup(html.escape(str(value), quote=True))


def join(parts: Iterable[Any], separator: str = "") -> Markup:
    return Markup(esc(separator).join(esc(p) for p in parts))


@functools.cache
def _template(name: str) -> string.Template:
    text = resources.files(__package__).joinpath("templates", name).read_text("utf-8")
    return string.Template(text)


def render(template: str, /, **values: Any) -> Markup:
    """Fill ``template``; every value is escaped unless it is Markup."""
    return Markup(_template(template).substitute({k: esc(v) for k, v in values.items()}))


def url(base: str, *segments: str, **query: Any) -> str:
    """A dashboard URL: ``base`` + quoted path segments + the non-empty query values."""
    path = base.rstrip("/") + "".join("/" + quote(s, safe="") for s in segments)
    params = {k: v for k, v in query.items() if v not in (None, "")}
    return f"{path}?{urlencode(params)}" if params else path


def iso(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def moment(ms: int | None) -> Markup:
    """A timestamp as ``<time>``: UTC text, localized by the page's script."""
    if ms is None:
        return Markup("")
    stamp = datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")
    return Markup(f'<time datetime="{esc(stamp)}">{esc(iso(ms))}</time>')


def duration(ms: float | None) -> str:
    """``850 ms``, ``12.3 s``, ``4 min 5 s``, ``3 h 2 min``, ``2 d 1 h``."""
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms:.0f} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {sec} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def ago(ms: int | None, now_ms: int | None = None) -> str:
    if ms is None:
        return ""
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    return duration(max(0, now - ms)) + " ago"


STATUS_CLASSES = {
    "SUCCESS": "ok",
    "ERROR": "bad",
    "MAX_RECOVERY_ATTEMPTS_EXCEEDED": "bad",
    "CANCELLED": "muted",
    "PENDING": "run",
    "ENQUEUED": "wait",
}


def status_badge(status: str | None) -> Markup:
    kind = STATUS_CLASSES.get(status or "", "muted")
    return Markup(f'<span class="badge {kind}" data-status="{esc(status)}">{esc(status)}</span>')


def link(href: str, text: Any, **attrs: str) -> Markup:
    extra = "".join(f' {k.replace("_", "-")}="{esc(v)}"' for k, v in attrs.items())
    return Markup(f'<a href="{esc(href)}"{extra}>{esc(text)}</a>')


def options(values: Iterable[tuple[str, str]], selected: str | None) -> Markup:
    """``<option>`` elements from ``(value, label)`` pairs."""
    return join(
        Markup(
            f'<option value="{esc(v)}"{" selected" if v == (selected or "") else ""}>'
            f"{esc(label)}</option>"
        )
        for v, label in values
    )


def definition_list(items: Iterable[tuple[str, Any]]) -> Markup:
    """``<dl>`` of the items whose value is not empty."""
    rows = [
        Markup(f"<div><dt>{esc(k)}</dt><dd>{esc(v)}</dd></div>")
        for k, v in items
        if v not in (None, "", Markup(""))
    ]
    return Markup(f'<dl class="facts">{join(rows)}</dl>')


def hidden_fields(fields: Mapping[str, str]) -> Markup:
    return join(
        Markup(f'<input type="hidden" name="{esc(k)}" value="{esc(v)}">') for k, v in fields.items()
    )
