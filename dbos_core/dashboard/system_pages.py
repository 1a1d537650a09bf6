"""The queues, schedules and health pages."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from typing import Any

from .. import __version__
from ..runtime.dispatcher import queue_registry
from ..runtime.scheduler import next_fire_time, registered_schedules
from ..storage import dashboard as queries
from ..storage.database import safe_url
from ..storage.debounce import HOLD_QUEUE
from ..storage.migrations import current_version
from ..types import INTERNAL_QUEUE_NAME
from .context import Page
from .html import Markup, ago, duration, esc, join, link, moment, render, status_badge
from .http import DashboardResponse

INTERNAL_QUEUES = {
    INTERNAL_QUEUE_NAME: "internal: resumed and forked workflows",
    HOLD_QUEUE: "internal: debounced workflows waiting for their delay",
}


def _limits(limits: Any) -> list[tuple[str, str]]:
    if limits is None:
        return [("Limits", "not declared in this process")]
    rate = (
        f"{limits.rate_limit} per {duration(limits.rate_period_ms)}"
        if limits.rate_limit is not None
        else "none"
    )
    return [
        ("Concurrency (all processes)", str(limits.concurrency or "unlimited")),
        ("Worker concurrency (per process)", str(limits.worker_concurrency or "unlimited")),
        ("Rate limit", rate),
        ("Priority", "enabled" if limits.priority_enabled else "off"),
        ("Partitioned", "yes" if limits.partitioned else "no"),
    ]


def _series(activity: queries.QueueActivity, now_ms: int) -> dict[str, list[Any]]:
    """Per minute of the last hour (uPlot wants seconds on x): dispatched, mean and max
    latency; minutes without a dispatch have 0 dispatched and no latency."""
    start = (now_ms - queries.HOUR_MS) // queries.MINUTE_MS * queries.MINUTE_MS
    by_minute = {m[0]: m for m in activity.minutes or []}
    xs, counts, means, worst = [], [], [], []
    for minute in range(start, now_ms + 1, queries.MINUTE_MS):
        entry = by_minute.get(minute)
        xs.append(minute // 1000)
        counts.append(entry[1] if entry else 0)
        means.append(round(entry[2], 1) if entry else None)
        worst.append(entry[3] if entry else None)
    return {"x": xs, "dispatched": counts, "mean": means, "max": worst}


def _minute_table(activity: queries.QueueActivity) -> Markup:
    rows = join(
        Markup(
            f'<tr><td>{moment(minute)}</td><td class="num">{count}</td>'
            f'<td class="num">{esc(duration(mean))}</td><td class="num">{esc(duration(worst))}</td></tr>'
        )
        for minute, count, mean, worst in activity.minutes or []
    )
    if not activity.minutes:
        return Markup('<p class="empty">Nothing dispatched in the last hour.</p>')
    return Markup(
        '<details><summary>The last hour as a table</summary><div class="table-wrap">'
        '<table class="data"><thead><tr><th scope="col">Minute</th><th scope="col">Dispatched</th>'
        '<th scope="col">Mean latency</th><th scope="col">Max latency</th></tr></thead>'
        f"<tbody>{rows}</tbody></table></div></details>"
    )


def queues_page(page: Page) -> DashboardResponse:
    now = int(time.time() * 1000)
    activity = queries.queue_activity(page.rt.sysdb.db, now)
    declared = {q.name: q for q in queue_registry.all()}
    names = sorted(set(activity) | set(declared), key=lambda n: (n in INTERNAL_QUEUES, n))
    cards: list[Markup] = []
    plots: dict[str, Any] = {}
    for index, name in enumerate(names):
        entry = activity.get(name) or queries.QueueActivity(name)
        oldest = (
            Markup(
                f"{link(page.url('workflows', entry.oldest_enqueued_id), entry.oldest_enqueued_id)}"
                f" (waiting {esc(ago(entry.oldest_enqueued_at, now).removesuffix(' ago'))})"
            )
            if entry.oldest_enqueued_id
            else Markup("none")
        )
        facts = [
            ("Enqueued (waiting)", str(entry.enqueued)),
            ("Running", str(entry.pending)),
            ("Oldest waiting", oldest),
            *_limits(declared.get(name)),
        ]
        items = join(Markup(f"<div><dt>{esc(k)}</dt><dd>{esc(v)}</dd></div>") for k, v in facts)
        chart_id = f"q{index}"
        plots[chart_id] = _series(entry, now)
        note = INTERNAL_QUEUES.get(name)
        cards.append(
            render(
                "queue.html",
                name=name,
                note=Markup(f'<p class="muted">{esc(note)}</p>') if note else "",
                facts=items,
                chart=chart_id,
                table=_minute_table(entry),
                listing=page.url("workflows", queue=name),
            )
        )
    if not cards:
        cards.append(Markup('<p class="empty">No queue is declared here or has workflows.</p>'))
    data = json.dumps(plots).replace("</", "<\\/")
    extra = Markup(f'<link rel="stylesheet" href="{esc(page.static("uPlot.min.css"))}">')
    content = Markup(
        f'<script type="application/json" id="queue-series">{data}</script>'
        f'<script src="{esc(page.static("uPlot.iife.min.js"))}" defer></script>'
        f'<div class="cards">{join(cards)}</div>'
    )
    return page.frame("Queues", "queues", content, extra_head=extra)


def schedules_page(page: Page) -> DashboardResponse:
    now = datetime.now(UTC)
    rows: list[Markup] = []
    db = page.rt.sysdb.db
    for schedule in sorted(registered_schedules(), key=lambda s: s.reg.name):
        name = schedule.reg.name
        runs = queries.latest_runs(db, name)
        upcoming = next_fire_time(schedule.cron, now)
        last = (
            Markup(
                f"{status_badge(runs[0]._mapping['status'])} "
                f"{link(page.url('workflows', runs[0]._mapping['workflow_uuid']), iso_of(runs[0]._mapping['created_at']))}"
            )
            if runs
            else Markup("never")
        )
        recent = join(status_badge(r._mapping["status"]) for r in runs[1:])
        rows.append(
            Markup(
                f'<tr><th scope="row">{link(page.url("workflows", name=name), name)}</th>'
                f"<td><code>{esc(schedule.cron)}</code></td><td>{last}</td>"
                f"<td>{moment(int(upcoming.timestamp() * 1000))}</td><td>{recent}</td></tr>"
            )
        )
    body = (
        join(rows)
        if rows
        else Markup(
            '<tr><td colspan="5" class="empty">No scheduled workflow is registered in this process.</td></tr>'
        )
    )
    content = render("schedules.html", rows=body)
    return page.frame("Schedules", "schedules", content)


def iso_of(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _process_counts(rt: Any) -> Markup:
    """Step retries and recoveries counted by this process's metrics (``enable_metrics``):
    retries are not stored in the database, so only the metrics know them."""
    exposition = rt.telemetry.metrics_exposition()
    if exposition is None:
        return Markup(
            '<p class="muted">Step retries are not stored in the database; with '
            "<code>enable_metrics</code> this page shows this process's count.</p>"
        )
    totals = {"dbos_step_retries_total": 0.0, "dbos_workflow_recoveries_total": 0.0}
    for line in exposition[0].decode("utf-8", "replace").splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in totals:
            totals[name] += float(line.rsplit(" ", 1)[1])
    return Markup(
        '<dl class="facts"><div><dt>Step retries in this process since it started</dt>'
        f'<dd id="step-retries">{int(totals["dbos_step_retries_total"])}</dd></div>'
        "<div><dt>Recoveries run by this process since it started</dt>"
        f"<dd>{int(totals['dbos_workflow_recoveries_total'])}</dd></div></dl>"
    )


def health_page(page: Page) -> DashboardResponse:
    rt = page.rt
    db = rt.sysdb.db
    found = queries.health(db)
    owner_rows: list[Markup] = []
    for executor, owner, count in found.owners or []:
        if owner == rt.instance_id:
            alive = Markup('<span class="badge ok">this process</span>')
        elif owner is None or rt.liveness is None:
            alive = Markup('<span class="badge muted">unknown</span>')
        elif rt.liveness.is_alive(owner):
            alive = Markup('<span class="badge ok">alive</span>')
        else:
            alive = Markup('<span class="badge bad">gone (its work will be recovered)</span>')
        owner_rows.append(
            Markup(
                f'<tr><th scope="row">{esc(executor)}</th><td><code>{esc((owner or "")[:12])}</code></td>'
                f'<td class="num">{count}</td><td>{alive}</td></tr>'
            )
        )
    version_rows = [
        Markup(
            f'<tr><th scope="row">{esc(version)}</th><td class="num">{count}</td>'
            f"<td>{'this process' if version == rt.app_version else ''}</td></tr>"
        )
        for version, count in found.versions or []
    ]
    reachable = (
        Markup(f'<span class="badge ok">reachable</span> round trip {found.latency_ms:.1f} ms')
        if found.reachable
        else Markup(f'<span class="badge bad">unreachable</span> {esc(found.error)}')
    )
    schema = current_version(db) if found.reachable else None
    content = render(
        "health.html",
        database=reachable,
        dialect="SQLite" if db.is_sqlite else "PostgreSQL",
        url=safe_url(db.url),
        schema=str(schema) if schema is not None else "unknown",
        executor=rt.executor_id,
        instance=rt.instance_id[:12],
        version=rt.app_version,
        pid=str(os.getpid()),
        library=__version__,
        owners=join(owner_rows)
        or Markup('<tr><td colspan="4" class="empty">No workflow is PENDING.</td></tr>'),
        versions=join(version_rows)
        or Markup(
            '<tr><td colspan="3" class="empty">No workflow is PENDING or ENQUEUED.</td></tr>'
        ),
        recovered=str(found.recovered_last_hour),
        exhausted=str(found.max_recovery_last_hour),
        errors=str(found.errors_last_hour),
        recovered_link=page.url("workflows", window="1h", status="MAX_RECOVERY_ATTEMPTS_EXCEEDED"),
        errors_link=page.url("workflows", window="1h", status="ERROR"),
        process_counts=_process_counts(rt),
    )
    return page.frame("Health", "health", content)
