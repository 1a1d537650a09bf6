"""The workflow list: filters, keyset pages, and the rows a live page re-renders."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..identifiers import check_lookup_id
from ..runtime.dispatcher import queue_registry
from ..runtime.registry import registry
from ..storage import dashboard as queries
from ..types import ALL_STATUSES
from .context import DashboardInputError, Page
from .html import Markup, duration, esc, join, link, moment, options, render, status_badge
from .http import DashboardResponse

PAGE_SIZES = (25, 50, 100)
DEFAULT_PAGE_SIZE = 50
MAX_FILTER_LENGTH = 200
WINDOWS = {
    "15m": ("Last 15 minutes", 15 * 60_000),
    "1h": ("Last hour", 3_600_000),
    "24h": ("Last 24 hours", 86_400_000),
    "7d": ("Last 7 days", 7 * 86_400_000),
    "30d": ("Last 30 days", 30 * 86_400_000),
}
# Query parameters that filter (kept across pages and in the live stream's URL).
FILTER_KEYS = ("status", "name", "queue", "user", "executor", "version", "prefix", "window")
TIME_KEYS = ("from", "to")


@dataclass
class ListRequest:
    query: queries.WorkflowQuery
    # The filters as given (to refill the form and build links).
    given: dict[str, str]


def _text(params: Mapping[str, str], key: str) -> str | None:
    value = params.get(key, "").strip()
    if not value:
        return None
    if len(value) > MAX_FILTER_LENGTH or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise DashboardInputError(
            f"The {key} filter must be at most {MAX_FILTER_LENGTH} printable characters"
        )
    return value


def _moment(params: Mapping[str, str], key: str) -> int | None:
    value = params.get(key, "").strip()
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise DashboardInputError(
            f"{key!r} must be a date and time such as 2026-01-31T14:05 (UTC), got {value[:40]!r}"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def encode_cursor(created_at: int, workflow_id: str) -> str:
    return f"{created_at}~{workflow_id}"


def _cursor(params: Mapping[str, str], key: str) -> queries.Cursor | None:
    value = params.get(key, "")
    if not value:
        return None
    stamp, sep, workflow_id = value.partition("~")
    if not sep or not stamp.isdigit():
        raise DashboardInputError(f"The {key!r} page cursor {value[:60]!r} is malformed")
    return queries.Cursor(int(stamp), check_lookup_id(workflow_id, f"{key} cursor"))


def parse_list_request(params: Mapping[str, str], now_ms: int | None = None) -> ListRequest:
    """The list's filters from query parameters; ``DashboardInputError`` names a bad one."""
    given = {k: params.get(k, "").strip() for k in (*FILTER_KEYS, *TIME_KEYS)}
    status = _text(params, "status")
    if status is not None and status not in ALL_STATUSES:
        raise DashboardInputError(
            f"Unknown status {status!r}; expected one of {', '.join(sorted(ALL_STATUSES))}"
        )
    window = params.get("window", "").strip()
    if window and window not in WINDOWS:
        raise DashboardInputError(
            f"Unknown time window {window!r}; expected one of {', '.join(WINDOWS)}"
        )
    limit_text = params.get("limit", "").strip()
    limit = DEFAULT_PAGE_SIZE
    if limit_text:
        if not limit_text.isdigit() or int(limit_text) not in PAGE_SIZES:
            raise DashboardInputError(
                f"limit must be one of {', '.join(map(str, PAGE_SIZES))}, got {limit_text[:20]!r}"
            )
        limit = int(limit_text)
    given["limit"] = str(limit) if limit_text else ""
    start_ms = _moment(params, "from")
    end_ms = _moment(params, "to")
    if window:
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        start_ms = now - WINDOWS[window][1]
    query = queries.WorkflowQuery(
        status=status,
        name=_text(params, "name"),
        queue_name=_text(params, "queue"),
        user=_text(params, "user"),
        executor_id=_text(params, "executor"),
        app_version=_text(params, "version"),
        id_prefix=_text(params, "prefix"),
        start_ms=start_ms,
        end_ms=end_ms,
        limit=limit,
        before=_cursor(params, "before"),
        after=_cursor(params, "after"),
    )
    if query.before is not None and query.after is not None:
        raise DashboardInputError("Give either 'before' or 'after', not both")
    return ListRequest(query, given)


def list_row(page: Page, row: Any) -> Markup:
    """One ``<tr>`` of the list (the live stream sends these again when a row changes)."""
    m = row._mapping
    workflow_id = m["workflow_uuid"]
    status = m["status"]
    finished = status not in queries.ACTIVE_STATUSES
    took = duration(m["updated_at"] - m["created_at"]) if finished else ""
    cells = [
        Markup(f'<th scope="row">{link(page.url("workflows", workflow_id), workflow_id)}</th>'),
        Markup(f"<td>{status_badge(status)}</td>"),
        Markup(f"<td>{esc(m['name'])}</td>"),
        Markup(f"<td>{esc(m['queue_name'])}</td>"),
        Markup(f'<td class="wide">{esc(m["authenticated_user"])}</td>'),
        Markup(f'<td class="wide">{esc(m["executor_id"])}</td>'),
        Markup(f'<td class="wide">{esc(m["application_version"])}</td>'),
        Markup(f"<td>{moment(m['created_at'])}</td>"),
        Markup(f"<td>{esc(took)}</td>"),
    ]
    return Markup(f'<tr data-wf="{esc(workflow_id)}">{join(cells)}</tr>')


def _datalist(element_id: str, values: list[str]) -> Markup:
    items = join(Markup(f'<option value="{esc(v)}">') for v in sorted(set(values)))
    return Markup(f'<datalist id="{esc(element_id)}">{items}</datalist>')


def _filter_form(page: Page, given: dict[str, str]) -> Markup:
    statuses = [("", "Any status"), *((s, s) for s in sorted(ALL_STATUSES))]
    windows = [("", "Any time"), *((k, label) for k, (label, _ms) in WINDOWS.items())]
    sizes = [
        ("", f"{DEFAULT_PAGE_SIZE} per page"),
        *((str(n), f"{n} per page") for n in PAGE_SIZES),
    ]
    names = [r.name for r in registry.workflows()]
    queue_names = [q.name for q in queue_registry.all()]
    return render(
        "filters.html",
        action=page.url("workflows"),
        statuses=options(statuses, given["status"]),
        windows=options(windows, given["window"]),
        sizes=options(sizes, given["limit"]),
        name=given["name"],
        queue=given["queue"],
        user=given["user"],
        executor=given["executor"],
        version=given["version"],
        prefix=given["prefix"],
        start=given["from"],
        end=given["to"],
        names=_datalist("dbos-names", names),
        queues=_datalist("dbos-queues", queue_names),
        clear=page.url("workflows"),
    )


def list_page(page: Page) -> DashboardResponse:
    params = page.request.query()
    try:
        request = parse_list_request(params)
    except DashboardInputError as exc:
        given = {k: params.get(k, "")[:MAX_FILTER_LENGTH] for k in (*FILTER_KEYS, *TIME_KEYS)}
        given["limit"] = ""
        content = _filter_form(page, given)
        return page.frame("Workflows", "workflows", content, status=400, error=exc.message)
    result = queries.list_page(page.rt.sysdb.db, request.query)
    rows = result.rows
    keep = {k: v for k, v in request.given.items() if v}
    nav: list[Markup] = []
    if result.has_newer and rows:
        first = rows[0]._mapping
        nav.append(
            link(
                page.url(
                    "workflows",
                    **keep,
                    after=encode_cursor(first["created_at"], first["workflow_uuid"]),
                ),
                "← Newer",
                rel="prev",
            )
        )
        nav.append(link(page.url("workflows", **keep), "Newest"))
    if result.has_older and rows:
        last = rows[-1]._mapping
        nav.append(
            link(
                page.url(
                    "workflows",
                    **keep,
                    before=encode_cursor(last["created_at"], last["workflow_uuid"]),
                ),
                "Older →",
                rel="next",
            )
        )
    body = join(list_row(page, r) for r in rows)
    if not rows:
        body = Markup('<tr><td colspan="9" class="empty">No workflow matches.</td></tr>')
    live_url = None
    if page.live and rows:
        # The first page also hears of newer workflows; later pages only of their rows.
        newest = rows[0]._mapping
        on_first_page = not result.has_newer
        live_url = page.url(
            "live",
            "workflows",
            ids=",".join(r._mapping["workflow_uuid"] for r in rows),
            top=encode_cursor(newest["created_at"], newest["workflow_uuid"])
            if on_first_page
            else "",
            **keep,
        )
    content = render(
        "workflows.html",
        filters=_filter_form(page, request.given),
        rows=body,
        shown=f"{len(rows)} workflow{'s' if len(rows) != 1 else ''} shown",
        pager=join(nav, " "),
        reload=page.url("workflows", **keep),
    )
    return page.frame("Workflows", "workflows", content, live_url=live_url)
