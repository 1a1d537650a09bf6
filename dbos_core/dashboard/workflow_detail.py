"""One workflow: its facts, actions, stored values, step timeline, relatives and data.

The page is made of sections (``SECTION_IDS``); the live stream re-renders them and
sends those that changed. Stored values are shown by ``safe_display`` (nothing is
unpickled unless the operator opted in with ``admin_deserialize_values``).
"""

from __future__ import annotations

import json
import time
from typing import Any

from ..safe_display import display_stored_value
from ..storage import dashboard as queries
from ..storage.streams import CLOSED_MARKER
from .context import Page
from .html import (
    Markup,
    definition_list,
    duration,
    esc,
    join,
    link,
    moment,
    options,
    render,
    status_badge,
)
from .http import DashboardResponse

SECTION_IDS = ("wf-summary", "wf-actions", "wf-timeline", "wf-values", "wf-relations", "wf-data")
CANCELLABLE = ("PENDING", "ENQUEUED")
RESUMABLE = ("ENQUEUED", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED")
# Bars narrower than this (percent of the timeline) are drawn at this width.
MIN_BAR_PERCENT = 0.6


def _roles(text: str | None) -> str:
    if not text:
        return ""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def _summary(page: Page, m: Any, now: int) -> Markup:
    status = m["status"]
    finished = status not in queries.ACTIVE_STATUSES
    elapsed = m["updated_at"] - m["created_at"] if finished else now - m["created_at"]
    relatives: list[tuple[str, Any]] = []
    if m["parent_workflow_id"]:
        relatives.append(
            (
                "Parent workflow",
                link(page.url("workflows", m["parent_workflow_id"]), m["parent_workflow_id"]),
            )
        )
    if m["forked_from"]:
        relatives.append(
            ("Forked from", link(page.url("workflows", m["forked_from"]), m["forked_from"]))
        )
    facts = definition_list(
        [
            ("Status", status_badge(status)),
            ("Name", m["name"]),
            ("Class", m["class_name"]),
            ("Instance", m["config_name"]),
            ("Queue", m["queue_name"]),
            ("Partition", m["queue_partition_key"]),
            ("Priority", m["priority"] if m["queue_name"] else None),
            ("Deduplication ID", m["deduplication_id"]),
            ("Created", moment(m["created_at"])),
            ("Dequeued", moment(m["started_at_epoch_ms"]) if m["queue_name"] else None),
            ("Updated", moment(m["updated_at"])),
            ("Took" if finished else "Running for", duration(elapsed)),
            ("Executions", m["recovery_attempts"]),
            ("Executor", m["executor_id"]),
            ("Application version", m["application_version"]),
            ("Authenticated user", m["authenticated_user"]),
            ("Roles", _roles(m["authenticated_roles"])),
            ("Assumed role", m["assumed_role"]),
            ("Request ID", m["request_id"]),
            ("Timeout", duration(m["workflow_timeout_ms"]) if m["workflow_timeout_ms"] else None),
            ("Deadline", moment(m["workflow_deadline_epoch_ms"])),
            *relatives,
        ]
    )
    return Markup(f'<section id="wf-summary" aria-label="Summary">{facts}</section>')


def _actions(page: Page, m: Any, steps: list[Any]) -> Markup:
    workflow_id = m["workflow_uuid"]
    status = m["status"]
    forms: list[Markup] = []
    fields = page.form_fields()
    if status in CANCELLABLE:
        forms.append(
            Markup(
                f'<form method="post" action="{esc(page.url("workflows", workflow_id, "cancel"))}">'
                f'{fields}<button type="submit" class="danger">Cancel workflow</button></form>'
            )
        )
    if status in RESUMABLE:
        forms.append(
            Markup(
                f'<form method="post" action="{esc(page.url("workflows", workflow_id, "resume"))}">'
                f'{fields}<button type="submit">Resume workflow</button></form>'
            )
        )
    last = max((int(s._mapping["function_id"]) for s in steps), default=0)
    names = {int(s._mapping["function_id"]): s._mapping["function_name"] for s in steps}
    choices = [
        (str(n), f"{n} · {names[n]}" if n in names else f"{n} · after the last recorded step")
        for n in range(1, last + 2)
    ]
    default = "2" if last >= 1 else "1"
    forms.append(
        Markup(
            f'<form method="get" class="fork" action="{esc(page.url("workflows", workflow_id, "fork"))}">'
            f'<label for="fork-step">Fork from step</label> '
            f'<select id="fork-step" name="step">{options(choices, default)}</select> '
            f'<button type="submit">Fork…</button></form>'
        )
    )
    return Markup(
        f'<section id="wf-actions" class="actions" aria-label="Actions">{join(forms)}</section>'
    )


def _value_block(title: str, text: str | None) -> Markup:
    if text is None:
        return Markup("")
    return Markup(f'<h3>{esc(title)}</h3><pre class="value">{esc(text)}</pre>')


def _values(page: Page, m: Any) -> Markup:
    show = page.serializer
    blocks = [
        _value_block("Input", display_stored_value(m["inputs"], show)),
        _value_block("Output", display_stored_value(m["output"], show)),
        _value_block("Error", display_stored_value(m["error"], show)),
    ]
    return Markup(
        f'<section id="wf-values" aria-labelledby="values-h"><h2 id="values-h">Input and outcome</h2>'
        f"{join(blocks)}</section>"
    )


def _timeline(page: Page, m: Any, steps: list[Any], now: int) -> Markup:
    if not steps:
        return Markup(
            '<section id="wf-timeline" aria-labelledby="steps-h"><h2 id="steps-h">Steps</h2>'
            '<p class="empty">No step recorded yet.</p></section>'
        )
    finished = m["status"] not in queries.ACTIVE_STATUSES
    starts = [s._mapping["started_at_epoch_ms"] for s in steps]
    ends = [s._mapping["completed_at_epoch_ms"] for s in steps]
    created = m["created_at"]
    # A fork's copied steps ran in the original workflow, before this one existed.
    copied = {
        s._mapping["function_id"]
        for s in steps
        if m["forked_from"] and (s._mapping["completed_at_epoch_ms"] or created) < created
    }
    origin = min(
        [
            created,
            *(
                t
                for s, t in zip(steps, starts, strict=True)
                if t is not None and s._mapping["function_id"] not in copied
            ),
        ]
    )
    end = max([m["updated_at"] if finished else now, *(t for t in ends if t is not None)])
    span = max(end - origin, 1)
    rows: list[Markup] = []
    show = page.serializer
    for s in steps:
        sm = s._mapping
        started, completed = sm["started_at_epoch_ms"], sm["completed_at_epoch_ms"]
        failed = sm["error"] is not None
        took = completed - started if started is not None and completed is not None else None
        if sm["function_id"] in copied:
            bar, offset = Markup(""), "copied (forked)"
        elif started is not None and completed is not None:
            left = (started - origin) * 100 / span
            width = max((completed - started) * 100 / span, MIN_BAR_PERCENT)
            width = min(width, 100 - left) if left < 100 else MIN_BAR_PERCENT
            bar = Markup(
                f'<div class="bar {"bad" if failed else "ok"}" '
                f'style="margin-left:{left:.2f}%;width:{width:.2f}%"></div>'
            )
            offset = f"+{duration(started - origin)}"
        else:
            bar, offset = Markup(""), ""
        child = sm["child_workflow_id"]
        outcome: Markup
        if failed:
            outcome = Markup(
                f'<details><summary><span class="badge bad">error</span></summary>'
                f'<pre class="value">{esc(display_stored_value(sm["error"], show))}</pre></details>'
            )
        elif child:
            outcome = link(page.url("workflows", child), child, title="Child workflow")
        else:
            shown = display_stored_value(sm["output"], show)
            outcome = Markup(f'<code class="short">{esc(shown)}</code>') if shown else Markup("")
        rows.append(
            Markup(
                f'<tr><td>{sm["function_id"]}</td><th scope="row">{esc(sm["function_name"])}</th>'
                f'<td class="num">{esc(offset)}</td><td class="num">{esc(duration(took))}</td>'
                f'<td class="gantt" aria-hidden="true">{bar}</td><td>{outcome}</td></tr>'
            )
        )
    return render(
        "timeline.html",
        rows=join(rows),
        total=duration(span),
        origin=moment(origin),
    )


def _relation_rows(page: Page, rows: list[Any]) -> Markup:
    return join(
        Markup(
            f'<tr><th scope="row">{link(page.url("workflows", r[0]), r[0])}</th>'
            f"<td>{esc(r[1])}</td><td>{status_badge(r[2])}</td><td>{moment(r[3])}</td></tr>"
        )
        for r in rows
    )


def _relations(page: Page, workflow_id: str) -> Markup:
    db = page.rt.sysdb.db
    parts: list[Markup] = []
    for title, rows in (
        ("Child workflows", queries.child_rows(db, workflow_id)),
        ("Forks", queries.fork_rows(db, workflow_id)),
    ):
        if rows:
            parts.append(
                Markup(
                    f'<h3>{esc(title)}</h3><div class="table-wrap"><table class="data">'
                    '<thead><tr><th scope="col">Workflow ID</th><th scope="col">Name</th>'
                    '<th scope="col">Status</th><th scope="col">Created</th></tr></thead>'
                    f"<tbody>{_relation_rows(page, rows)}</tbody></table></div>"
                )
            )
    if not parts:
        return Markup('<section id="wf-relations" hidden></section>')
    return Markup(
        f'<section id="wf-relations" aria-labelledby="rel-h"><h2 id="rel-h">Related workflows</h2>'
        f"{join(parts)}</section>"
    )


def _data(page: Page, workflow_id: str) -> Markup:
    db = page.rt.sysdb.db
    show = page.serializer
    events = queries.event_rows(db, workflow_id)
    sizes = queries.stream_sizes(db, workflow_id)
    parts: list[Markup] = []
    if events:
        items = join(
            Markup(
                f"<div><dt>{esc(k)}</dt><dd><code>{esc(display_stored_value(v, show))}</code></dd></div>"
            )
            for k, v in events
        )
        parts.append(Markup(f'<h3>Events</h3><dl class="facts">{items}</dl>'))
    if sizes:
        values: dict[str, list[str]] = {}
        for key, _offset, value in queries.stream_rows(db, workflow_id):
            shown = "(closed)" if value == CLOSED_MARKER else display_stored_value(value, show)
            values.setdefault(key, []).append(shown or "")
        items = join(
            Markup(
                f'<div><dt>{esc(key)} <span class="muted">({count} value{"s" if count != 1 else ""})</span></dt>'
                f'<dd><ol class="stream">{join(Markup(f"<li><code>{esc(v)}</code></li>") for v in values.get(key, []))}</ol></dd></div>'
            )
            for key, count in sorted(sizes.items())
        )
        parts.append(Markup(f'<h3>Streams</h3><dl class="facts">{items}</dl>'))
    if not parts:
        return Markup('<section id="wf-data" hidden></section>')
    return Markup(
        f'<section id="wf-data" aria-labelledby="data-h"><h2 id="data-h">Events and streams</h2>'
        f"{join(parts)}</section>"
    )


def detail_sections(page: Page, workflow_id: str) -> dict[str, Markup] | None:
    """Every section of the page, or None when no such workflow exists."""
    db = page.rt.sysdb.db
    row = queries.workflow_row(db, workflow_id)
    if row is None:
        return None
    m = row._mapping
    steps = queries.step_rows(db, workflow_id)
    now = int(time.time() * 1000)
    return {
        "wf-summary": _summary(page, m, now),
        "wf-actions": _actions(page, m, steps),
        "wf-timeline": _timeline(page, m, steps, now),
        "wf-values": _values(page, m),
        "wf-relations": _relations(page, workflow_id),
        "wf-data": _data(page, workflow_id),
    }


def detail_page(
    page: Page,
    workflow_id: str,
    *,
    notice: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> DashboardResponse:
    sections = detail_sections(page, workflow_id)
    if sections is None:
        content = Markup(f"<p>{link(page.url('workflows'), 'Back to the workflow list')}</p>")
        return page.frame(
            "Workflow not found",
            "workflows",
            content,
            status=404,
            error=f"No workflow has the ID {workflow_id!r}",
        )
    content = join(sections[key] for key in SECTION_IDS)
    live_url = page.url("live", "workflow", workflow_id) if page.live else None
    return page.frame(
        f"Workflow {workflow_id}",
        "workflows",
        Markup(
            f'<p id="live-state" class="live-state" role="status" aria-live="polite"></p>{content}'
        ),
        status=status,
        notice=notice,
        error=error,
        live_url=live_url,
    )


def fork_confirm_page(page: Page, workflow_id: str, step_text: str) -> DashboardResponse:
    """``GET .../fork?step=N``: say what a fork from step N does, and ask to confirm."""
    db = page.rt.sysdb.db
    row = queries.workflow_row(db, workflow_id)
    if row is None:
        return detail_page(page, workflow_id)
    steps = queries.step_rows(db, workflow_id)
    last = max((int(s._mapping["function_id"]) for s in steps), default=0)
    if not step_text.isdigit() or not 1 <= int(step_text) <= last + 1:
        return detail_page(
            page,
            workflow_id,
            error=f"Choose a step between 1 and {last + 1} to fork from, not {step_text[:20]!r}",
            status=400,
        )
    step = int(step_text)
    names = {int(s._mapping["function_id"]): s._mapping["function_name"] for s in steps}
    copied = (
        f"Steps 1 to {step - 1} are copied with their recorded outputs"
        if step > 1
        else "No step is copied"
    )
    content = render(
        "fork.html",
        back=page.url("workflows", workflow_id),
        action=page.url("workflows", workflow_id, "fork"),
        fields=page.form_fields(),
        step=str(step),
        step_name=names.get(step, "the step after the last recorded one"),
        copied=copied,
        name=row._mapping["name"],
        workflow_id=workflow_id,
    )
    return page.frame(f"Fork workflow {workflow_id}", "workflows", content)
