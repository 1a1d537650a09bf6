"""Request hooks: the DBOS request scope (idempotency key, request id, user).

The scope is entered in ``before_request`` and left as soon as the view has
returned (``after_request``), with ``teardown_request`` as the backstop when a
view raised. So the key names only the first workflow the view starts, and
nothing after the response (a streamed body, work the response triggers, the
next request on the same thread) sees it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, current_app, g, jsonify, request

from dbos_core import integration as seam
from dbos_core.error import DBOSException

if TYPE_CHECKING:
    from .extension import DBOSFlaskState

# A resolver returns None (anonymous), a user name, (user, roles) or
# (user, roles, assumed_role); roles may be names or objects with a ``name``.
UserResolverArg = Callable[[], Any]

_TOKEN_ATTR = "_dbos_request_scope_token"


def install_request_hooks(app: Flask, state: DBOSFlaskState) -> None:
    def enter_scope() -> Response | None:
        try:
            scope = seam.open_request(
                idempotency_key=request.headers.get(state.idempotency_header),
                request_id=request.headers.get(state.request_id_header),
                identity=lambda: identity_of_request(state.user_resolver),
            )
        except DBOSException as exc:
            # A malformed key or request id: refused before the view runs.
            status, body = seam.error_response(exc)
            response = jsonify(body)
            response.status_code = status
            return response
        if state.launch_on_first_request:
            state.launch()
        setattr(g, _TOKEN_ATTR, seam.enter_request_scope(scope))
        return None

    def leave_scope_after_view(response: Response) -> Response:
        _leave_scope()
        return response

    def leave_scope_on_teardown(_exc: BaseException | None) -> None:
        _leave_scope()

    app.before_request(enter_scope)
    app.after_request(leave_scope_after_view)
    app.teardown_request(leave_scope_on_teardown)


def _leave_scope() -> None:
    token = g.pop(_TOKEN_ATTR, None)
    if token is not None:
        seam.exit_request_scope(token)


def identity_of_request(resolver: UserResolverArg | None) -> Any:
    """The current request's user, in any shape ``integration.normalize_identity`` takes:
    from the app's resolver, else Flask-Login's ``current_user`` (called lazily, once)."""
    if resolver is not None:
        return resolver()
    return _flask_login_user()


def _flask_login_user() -> tuple[str | None, Any]:
    """Flask-Login's current_user, when the package is installed and the app uses it."""
    if getattr(current_app, "login_manager", None) is None:
        return None, None
    try:
        from flask_login import current_user  # type: ignore[import-untyped]
    except ImportError:
        return None, None
    if not getattr(current_user, "is_authenticated", False):
        return None, None
    user_id = current_user.get_id()
    if user_id is None:
        return None, None
    return str(user_id), getattr(current_user, "roles", None)
