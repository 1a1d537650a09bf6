"""The dashboard's handler without a browser: pages, validation, actions and their
guards, keyset pages, safe display and live streams (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from dbos_core import DBOS, SetWorkflowID
from dbos_core.dashboard import Dashboard, DashboardRequest, DashboardResponse
from dbos_core.dashboard.app import CSRF_COOKIE, CSRF_FIELD
from dbos_core.dashboard.context import Page
from dbos_core.dashboard.live import DetailFeed, ListFeed, LiveStream
from dbos_core.runtime.global_state import get_runtime
from dbos_core.storage import dashboard as queries
from dbos_core.storage.schema import workflow_status
from tests.core.crafted_pickle import CRAFTED_ID, write_crafted_workflow

TOKEN = "0123456789abcdef0123456789abcdef"


@DBOS.step()
def dashpage_one(x: int) -> int:
    return x + 1


@DBOS.step()
def dashpage_two(x: int) -> int:
    return x * 2


@DBOS.workflow()
def dashpage_flow(x: int) -> int:
    DBOS.set_event("stage", "half")
    return dashpage_two(dashpage_one(x))


@DBOS.workflow()
def dashpage_wait() -> str:
    dashpage_one(1)
    return str(DBOS.recv("go", timeout_seconds=60))


def get(dashboard: Dashboard, path: str, query: str = "", **extra: Any) -> DashboardResponse:
    return dashboard.handle(DashboardRequest("GET", path, "/dash", query, **extra))


def post(
    dashboard: Dashboard,
    path: str,
    fields: dict[str, str],
    *,
    cookie: str | None = TOKEN,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> DashboardResponse:
    from urllib.parse import urlencode

    return dashboard.handle(
        DashboardRequest(
            "POST",
            path,
            "/dash",
            body=urlencode(fields).encode(),
            headers=headers or {"host": "127.0.0.1", "origin": "http://127.0.0.1"},
            cookies={CSRF_COOKIE: cookie} if cookie else {},
            **extra,
        )
    )


def html(response: DashboardResponse) -> str:
    """The page's text with HTML escapes undone (messages are escaped on the page)."""
    import html as html_module

    return html_module.unescape(response.body.decode())


def status(workflow_id: str) -> str:
    return DBOS.retrieve_workflow(workflow_id).get_status().status


def test_every_page_renders_and_bad_input_is_named(dbos: type[DBOS]) -> None:
    for i in range(3):
        with SetWorkflowID(f"dashpage-{i}"):
            dashpage_flow(i)
    dashboard = Dashboard()
    assert get(dashboard, "/").status == 302
    listing = get(dashboard, "/workflows", "status=SUCCESS&name=dashpage_flow")
    assert listing.status == 200 and listing.cookies[0].name == CSRF_COOKIE
    assert all(f'data-wf="dashpage-{i}"' in html(listing) for i in range(3))
    assert ("Content-Security-Policy", listing.headers[0][1]) in listing.headers
    detail = html(get(dashboard, "/workflows/dashpage-1"))
    assert "dashpage_one" in detail and "dashpage_two" in detail and "stage" in detail
    assert 'class="bar ok"' in detail  # the step timeline
    for path in ("/queues", "/schedules", "/health", "/workflows/dashpage-1/fork"):
        query = "step=2" if path.endswith("fork") else ""
        assert get(dashboard, path, query).status == 200, path
    assert "reachable" in html(get(dashboard, "/health"))
    bad = {
        "status=DONE": "Unknown status 'DONE'",
        "window=3y": "Unknown time window '3y'",
        "limit=7": "limit must be one of 25, 50, 100",
        "from=yesterday": "'from' must be a date and time",
        "before=12~x&after=12~y": "either 'before' or 'after'",
        "before=nonsense": "cursor 'nonsense' is malformed",
        "name=" + "n" * 300: "at most 200 printable characters",
    }
    for query, message in bad.items():
        response = get(dashboard, "/workflows", query)
        assert response.status == 400 and message in html(response), query
    missing = get(dashboard, "/workflows/no-such-workflow")
    assert missing.status == 404 and "No workflow has the ID" in html(missing)
    step = get(dashboard, "/workflows/dashpage-1/fork", "step=9")
    assert step.status == 400 and "between 1 and 4" in html(step)
    assert get(dashboard, "/nowhere").status == 404
    assert get(dashboard, "/static/../../etc/passwd").status == 404
    css = get(dashboard, "/static/dashboard.css")
    assert css.status == 200 and css.content_type.startswith("text/css")


def test_keyset_pages_walk_every_row_once(dbos: type[DBOS]) -> None:
    db = get_runtime().sysdb.db
    stamp = int(time.time() * 1000)
    ids = [f"key-{i:02d}" for i in range(11)]
    with db.transaction() as conn:
        for i, workflow_id in enumerate(ids):
            # Ties on created_at: three rows share each millisecond.
            at = stamp - (i // 3)
            conn.execute(
                sa.insert(workflow_status).values(
                    workflow_uuid=workflow_id,
                    status="SUCCESS",
                    name="keyed",
                    created_at=at,
                    updated_at=at,
                )
            )
    expected = sorted(ids, key=lambda w: (stamp - ids.index(w) // 3, w), reverse=True)
    seen: list[str] = []
    query = queries.WorkflowQuery(name="keyed", limit=4)
    while True:
        page = queries.list_page(db, query)
        seen.extend(r._mapping["workflow_uuid"] for r in page.rows)
        if not page.has_older:
            break
        last = page.rows[-1]._mapping
        query = queries.WorkflowQuery(
            name="keyed", limit=4, before=queries.Cursor(last["created_at"], last["workflow_uuid"])
        )
    assert seen == expected
    # And back again with "after" cursors from the oldest page.
    back: list[str] = []
    first = page.rows[0]._mapping
    query = queries.WorkflowQuery(
        name="keyed", limit=4, after=queries.Cursor(first["created_at"], first["workflow_uuid"])
    )
    while True:
        newer = queries.list_page(db, query)
        back = [r._mapping["workflow_uuid"] for r in newer.rows] + back
        if not newer.has_newer:
            break
        top = newer.rows[0]._mapping
        query = queries.WorkflowQuery(
            name="keyed", limit=4, after=queries.Cursor(top["created_at"], top["workflow_uuid"])
        )
    assert back + [r._mapping["workflow_uuid"] for r in page.rows] == expected
    assert (
        queries.count_newer(
            db, queries.WorkflowQuery(name="keyed"), queries.Cursor(stamp - 3, "key-09")
        )
        == 10
    )


def test_id_prefix_is_literal(dbos: type[DBOS]) -> None:
    for workflow_id in ("pre%x", "pre_x", "prezx", "pre\\x"):
        with SetWorkflowID(workflow_id):
            dashpage_flow(1)
    db = get_runtime().sysdb.db

    def found(prefix: str) -> list[str]:
        rows = queries.list_page(db, queries.WorkflowQuery(id_prefix=prefix)).rows
        return sorted(r._mapping["workflow_uuid"] for r in rows)

    assert found("pre%") == ["pre%x"]
    assert found("pre_") == ["pre_x"]
    assert found("pre\\") == ["pre\\x"]
    assert found("pre") == ["pre%x", "pre\\x", "pre_x", "prezx"]


def test_actions_need_the_form_token_and_the_same_origin(dbos: type[DBOS]) -> None:
    handles = [DBOS.start_workflow(dashpage_wait) for _ in range(2)]
    dashboard = Dashboard()
    target = handles[0].get_workflow_id()
    path = f"/workflows/{target}/cancel"
    refused = {
        "no token": post(dashboard, path, {}),
        "wrong token": post(dashboard, path, {CSRF_FIELD: "f" * 32}),
        "no cookie": post(dashboard, path, {CSRF_FIELD: TOKEN}, cookie=None),
        "other origin": post(
            dashboard,
            path,
            {CSRF_FIELD: TOKEN},
            headers={"host": "127.0.0.1", "origin": "http://evil.example"},
        ),
        "cross-site fetch": post(
            dashboard,
            path,
            {CSRF_FIELD: TOKEN},
            headers={"host": "127.0.0.1", "sec-fetch-site": "cross-site"},
        ),
        "viewer only": post(dashboard, path, {CSRF_FIELD: TOKEN}, can_act=False),
    }
    for why, response in refused.items():
        assert response.status == 403, why
    assert status(target) == "PENDING"
    done = post(dashboard, path, {CSRF_FIELD: TOKEN})
    assert (
        done.status == 303
        and ("Location", f"/dash/workflows/{target}?done=cancelled") in done.headers
    )
    assert status(target) == "CANCELLED"
    assert "Workflow cancelled." in html(get(dashboard, f"/workflows/{target}", "done=cancelled"))
    resumed = post(dashboard, f"/workflows/{target}/resume", {CSRF_FIELD: TOKEN})
    assert resumed.status == 303 and status(target) in ("PENDING", "ENQUEUED")
    # A framework that checks CSRF itself (Django) passes its fields through.
    other = handles[1].get_workflow_id()
    framework = post(
        dashboard,
        f"/workflows/{other}/cancel",
        {},
        cookie=None,
        framework_csrf=True,
        csrf_fields={"csrfmiddlewaretoken": "django's"},
    )
    assert framework.status == 303 and status(other) == "CANCELLED"
    for handle in handles:
        DBOS.send(handle.get_workflow_id(), "stop", "go")


def test_fork_needs_a_confirmed_step(dbos: type[DBOS]) -> None:
    with SetWorkflowID("dashpage-source"):
        dashpage_flow(5)
    dashboard = Dashboard()
    path = "/workflows/dashpage-source/fork"
    unconfirmed = post(dashboard, path, {CSRF_FIELD: TOKEN, "start_step": "2"})
    assert unconfirmed.status == 400 and "confirm the fork" in html(unconfirmed)
    beyond = post(dashboard, path, {CSRF_FIELD: TOKEN, "start_step": "9", "confirm": "yes"})
    assert beyond.status == 400 and "start_step must be between 1 and 4" in html(beyond)
    forked = post(dashboard, path, {CSRF_FIELD: TOKEN, "start_step": "2", "confirm": "yes"})
    assert forked.status == 303
    new_id = dict(forked.headers)["Location"].split("/workflows/")[1].split("?")[0]
    assert DBOS.retrieve_workflow(new_id).get_result() == 12
    forked_status = DBOS.retrieve_workflow(new_id).get_status()
    assert forked_status.forked_from == "dashpage-source"
    source_page = html(get(dashboard, "/workflows/dashpage-source"))
    assert f'href="/dash/workflows/{new_id}"' in source_page  # linked both ways
    assert "copied (forked)" in html(get(dashboard, f"/workflows/{new_id}"))


def test_stored_values_are_shown_without_unpickling(dbos: type[DBOS], tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    write_crafted_workflow(get_runtime().sysdb.db, marker)
    dashboard = Dashboard()
    page = html(get(dashboard, f"/workflows/{CRAFTED_ID}"))
    listing = html(get(dashboard, "/workflows"))
    assert not marker.exists()
    assert "references io.open" in page and CRAFTED_ID in listing


def _page(live: bool = True) -> Page:
    rt = get_runtime()
    return Page(rt, DashboardRequest("GET", "/", "/dash"), {}, None, live)


def test_a_live_list_sends_a_row_when_its_workflow_finishes(dbos: type[DBOS]) -> None:
    handle = DBOS.start_workflow(dashpage_wait)
    workflow_id = handle.get_workflow_id()
    feed = ListFeed(_page(), [workflow_id], queries.WorkflowQuery(), None)
    stream = LiveStream(get_runtime(), feed)
    opening = stream.opening()
    assert opening.startswith(b"retry: ") and b"PENDING" in opening
    assert stream.step() == b""  # nothing changed: nothing sent
    DBOS.send(workflow_id, "done", "go")
    assert stream._waiter is not None and stream._waiter.wait(30)  # woken by the notifier
    deadline = time.monotonic() + 30
    data = b""
    while b"SUCCESS" not in data:
        assert time.monotonic() < deadline, data
        stream._waiter.wait(1.0)
        data = stream.step()
    assert data.startswith(b"event: rows\n") and workflow_id.encode() in data
    stream.close()
    assert not get_runtime().notifier.has_waiters(f"wf:{workflow_id}")


async def test_a_live_workflow_page_streams_on_an_event_loop(dbos: type[DBOS]) -> None:
    handle = await DBOS.start_workflow_async(dashpage_wait)
    workflow_id = handle.get_workflow_id()
    stream = LiveStream(get_runtime(), DetailFeed(_page(), workflow_id))
    chunks = stream.iter_async()
    first = await anext(chunks)
    assert b"event: sections" in first and b"PENDING" in first
    await DBOS.send_async(workflow_id, "done", "go")
    received = b""
    while b'data-status=\\"SUCCESS\\"' not in received:
        received = await asyncio.wait_for(anext(chunks), 30)
    await chunks.aclose()
    assert stream.closed


_flaky_calls: list[int] = []


@DBOS.step(retries_allowed=True, interval_seconds=0.01, max_attempts=3)
def dashpage_flaky() -> str:
    _flaky_calls.append(1)
    if len(_flaky_calls) < 3:
        raise ConnectionError("not yet")
    return "ok"


@DBOS.workflow()
def dashpage_retrying() -> str:
    return dashpage_flaky()


def test_health_counts_step_retries_with_metrics(dbos_config: Any) -> None:
    DBOS.destroy()
    DBOS(config={**dbos_config, "enable_metrics": True})
    DBOS.launch()
    try:
        without = html(get(Dashboard(), "/health"))
        assert 'id="step-retries">0<' in without
        _flaky_calls.clear()
        assert dashpage_retrying() == "ok"
        page = html(get(Dashboard(), "/health"))
        assert 'id="step-retries">2<' in page
    finally:
        DBOS.destroy()
    DBOS(config=dbos_config)
    DBOS.launch()
    try:
        assert "Step retries are not stored in the database" in html(get(Dashboard(), "/health"))
    finally:
        DBOS.destroy()
