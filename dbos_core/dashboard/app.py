"""The dashboard as one framework-free handler: ``Dashboard.handle(request) -> response``.

Routes (relative to the mount point)::

    GET  /                          the workflow list
    GET  /workflows                 the list: filters, keyset pages
    GET  /workflows/<id>            one workflow
    GET  /workflows/<id>/fork?step= confirm a fork
    POST /workflows/<id>/cancel     cancel      } through the same management functions
    POST /workflows/<id>/resume     resume      } as the admin server's JSON routes
    POST /workflows/<id>/fork       fork (start_step, confirm=yes)
    GET  /queues  /schedules  /health
    GET  /live/workflows?ids=..     server-sent events for a page of the list
    GET  /live/workflow/<id>        server-sent events for one workflow
    GET  /static/<file>             CSS, JavaScript, the vendored uPlot

Who may see the dashboard is decided by the mount (its framework's authentication,
or the admin server's token). What is checked here: a state-changing request must
come from the dashboard's own pages (a double-submit CSRF token, unless the
framework checks CSRF itself, and a same-origin ``Origin``/``Sec-Fetch-Site``), and
every ID, filter and form field is validated before it reaches the database.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import uuid
from importlib import resources
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from ..error import DBOSException
from ..identifiers import check_lookup_id
from ..runtime import global_state
from .context import STATIC_FILES, DashboardInputError, Page, asset_version
from .html import Markup
from .http import Cookie, DashboardRequest, DashboardResponse, plain, redirect

if TYPE_CHECKING:
    from ..runtime.runtime import Runtime

logger = logging.getLogger("dbos.dashboard")

CSRF_COOKIE = "dbos_dashboard_csrf"
CSRF_FIELD = "csrf_token"
MAX_LIVE_ROWS = 100
DONE_NOTICES = {
    "cancelled": "Workflow cancelled.",
    "resumed": "Workflow resumed.",
    "forked": "Forked: this is the new workflow.",
}


class Dashboard:
    """Serve the dashboard of the running DBOS (``rt``, else the launched one).

    ``live=False`` leaves out the event streams (pages then show a snapshot).
    ``deserialize_values`` None follows ``admin_deserialize_values``; only True shows
    stored values decoded by the application's serializer.
    """

    def __init__(
        self,
        rt: Runtime | None = None,
        *,
        live: bool = True,
        deserialize_values: bool | None = None,
    ) -> None:
        self._rt = rt
        self.live = live
        self.deserialize_values = deserialize_values

    def runtime(self) -> Runtime:
        return self._rt if self._rt is not None else global_state.get_runtime()

    # -- entry point ---------------------------------------------------------------

    def handle(self, request: DashboardRequest) -> DashboardResponse:
        segments = [unquote(s) for s in request.path.split("/") if s]
        if segments[:1] == ["static"]:
            return self._static(request, segments[1:])
        rt = self.runtime()
        if not rt.launched or rt.stopped:
            return plain(503, "DBOS is not running in this process yet; try again shortly.")
        token = request.cookies.get(CSRF_COOKIE, "")
        new_cookie = None
        if not request.framework_csrf and not _good_token(token):
            token = secrets.token_hex(16)
            new_cookie = Cookie(CSRF_COOKIE, token, path=request.base_path.rstrip("/") or "/")
        fields = dict(request.csrf_fields) if request.framework_csrf else {CSRF_FIELD: token}
        decode = rt.config.admin_deserialize_values
        if self.deserialize_values is not None:
            decode = self.deserialize_values
        page = Page(rt, request, fields, rt.serializer if decode else None, self.live)
        try:
            response = self._route(page, request, segments, token)
        except DashboardInputError as exc:
            response = page.frame(
                "Bad request", "workflows", _nothing(), status=400, error=exc.message
            )
        except DBOSException as exc:
            if exc.http_status >= 500:
                logger.error(
                    "Dashboard request %s %s failed: %s", request.method, request.path, exc
                )
                message = "Internal error; the details are in the server's log"
            else:
                message = exc.message
            status = exc.http_status if 400 <= exc.http_status <= 599 else 500
            response = page.frame("Error", "workflows", _nothing(), status=status, error=message)
        if new_cookie is not None:
            response.cookies.append(new_cookie)
        return response

    def _route(
        self, page: Page, request: DashboardRequest, segments: list[str], token: str
    ) -> DashboardResponse:
        from . import live, system_pages, workflow_detail, workflow_list

        method = request.method.upper()
        if method == "POST":
            return self._action(page, request, segments, token)
        if method not in ("GET", "HEAD"):
            return plain(405, "Use GET, or POST for actions")
        base = page.base
        match segments:
            case []:
                return redirect(page.url("workflows"), 302)
            case ["workflows"]:
                return workflow_list.list_page(page)
            case ["workflows", workflow_id]:
                notice = DONE_NOTICES.get(request.query().get("done", ""))
                return workflow_detail.detail_page(
                    page, check_lookup_id(workflow_id), notice=notice
                )
            case ["workflows", workflow_id, "fork"]:
                step = request.query().get("step", "")
                return workflow_detail.fork_confirm_page(page, check_lookup_id(workflow_id), step)
            case ["queues"]:
                return system_pages.queues_page(page)
            case ["schedules"]:
                return system_pages.schedules_page(page)
            case ["health"]:
                return system_pages.health_page(page)
            case ["live", "workflows"] if self.live:
                return self._live_list(page)
            case ["live", "workflow", workflow_id] if self.live:
                feed = live.DetailFeed(page, check_lookup_id(workflow_id))
                return _event_stream(live.LiveStream(page.rt, feed))
        return page.frame(
            "Not found",
            "",
            _nothing(),
            status=404,
            error=f"No dashboard page at {base}{request.path}",
        )

    # -- live --------------------------------------------------------------------------

    def _live_list(self, page: Page) -> DashboardResponse:
        from ..storage.dashboard import Cursor
        from . import live, workflow_list

        params = page.request.query()
        ids = [i for i in params.get("ids", "").split(",") if i]
        if len(ids) > MAX_LIVE_ROWS:
            raise DashboardInputError(f"A live list follows at most {MAX_LIVE_ROWS} workflows")
        ids = [check_lookup_id(i) for i in ids]
        filters = {k: v for k, v in params.items() if k not in ("ids", "top", "before", "after")}
        listing = workflow_list.parse_list_request(filters)
        newest: Cursor | None = None
        top = params.get("top", "")
        if top:
            newest = workflow_list.parse_list_request({"before": top}).query.before
        feed = live.ListFeed(page, ids, listing.query, newest)
        return _event_stream(live.LiveStream(page.rt, feed))

    # -- actions ---------------------------------------------------------------------

    def _action(
        self, page: Page, request: DashboardRequest, segments: list[str], token: str
    ) -> DashboardResponse:
        if not request.can_act:
            return page.frame(
                "Not allowed",
                "workflows",
                _nothing(),
                status=403,
                error="You may look at workflows here but not change them",
            )
        problem = _cross_site(request)
        if problem is None and not request.framework_csrf:
            given = request.form().get(CSRF_FIELD, "")
            if not (_good_token(token) and hmac.compare_digest(given, token)):
                problem = (
                    "The form's security token is missing or stale; reload the page and try again"
                )
        if problem is not None:
            return page.frame("Refused", "workflows", _nothing(), status=403, error=problem)
        match segments:
            case ["workflows", workflow_id, verb] if verb in ("cancel", "resume", "fork"):
                workflow_id = check_lookup_id(workflow_id)
            case _:
                return plain(404, "No such action")
        return self._act(page, workflow_id, verb, request.form())

    def _act(
        self, page: Page, workflow_id: str, verb: str, form: dict[str, str]
    ) -> DashboardResponse:
        from ..api_management import fork_in_runtime
        from ..runtime import management
        from .workflow_detail import detail_page

        rt = page.rt
        if verb == "cancel":
            management.cancel_workflow(rt, workflow_id)
            return redirect(page.url("workflows", workflow_id, done="cancelled"))
        if verb == "resume":
            management.resume_workflow(rt, workflow_id)
            return redirect(page.url("workflows", workflow_id, done="resumed"))
        step = form.get("start_step", "")
        if form.get("confirm") != "yes" or not step.isdigit():
            return detail_page(
                page, workflow_id, status=400, error="Choose a step and confirm the fork"
            )
        new_id = fork_in_runtime(rt, workflow_id, int(step), None, str(uuid.uuid4()))
        logger.info("Dashboard: forked %s from step %s into %s", workflow_id, step, new_id)
        return redirect(page.url("workflows", new_id, done="forked"))

    # -- static files -------------------------------------------------------------------

    def _static(self, request: DashboardRequest, rest: list[str]) -> DashboardResponse:
        if len(rest) != 1 or rest[0] not in STATIC_FILES:
            return plain(404, "No such file")
        name = rest[0]
        data = resources.files(__package__).joinpath("static", name).read_bytes()
        versioned = request.query().get("v") == asset_version()
        cache = "public, max-age=31536000, immutable" if versioned else "no-cache"
        return DashboardResponse(
            200,
            data,
            STATIC_FILES[name],
            headers=[("Cache-Control", cache), ("X-Content-Type-Options", "nosniff")],
        )


def _nothing() -> Markup:
    return Markup("")


def _good_token(token: str) -> bool:
    return len(token) == 32 and all(c in "0123456789abcdef" for c in token)


def _cross_site(request: DashboardRequest) -> str | None:
    """Why a state-changing request is refused as cross-site, or None."""
    headers = request.headers
    site = headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return "Refused: this request came from another site"
    origin = headers.get("origin")
    if origin is not None and origin != "null":
        host = headers.get("host", "")
        if urlsplit(origin).netloc.lower() != host.lower():
            return "Refused: this request came from another origin"
    elif origin == "null":
        return "Refused: this request came from an opaque origin"
    return None


def _event_stream(stream: object) -> DashboardResponse:
    from .live import LiveStream

    assert isinstance(stream, LiveStream)
    return DashboardResponse(
        200,
        b"",
        "text/event-stream; charset=utf-8",
        headers=[("Cache-Control", "no-store"), ("X-Accel-Buffering", "no")],
        stream=stream,
    )
