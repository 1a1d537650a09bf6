"""Request hooks: the DBOS request scope (idempotency key, request id, user).

The scope is entered in ``before_request`` and left as soon as the view has
returned (``after_request``), with ``teardown_request`` as the backstop when a
view raised. So the key names only the first workflow the view starts, and
nothing after the response (a streamed body, work the response triggers, the
next request on the same thread) sees it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, current_app, g, request

from dbos_core import integration as seam

if TYPE_CHECKING:
    from .extension import DBOSFlaskState

# A resolver returns None (anonymous), a user name, or (user, roles).
UserResolverArg = Callable[[], Any]

_TOKEN_ATTR = "_dbos_request_scope_token"


def install_request_hooks(app: Flask, state: DBOSFlaskState) -> None:
    def enter_scope() -> None:
        if state.launch_on_first_request:
            state.launch()
        scope = seam.new_request_context(
            idempotency_key=request.headers.get(state.idempotency_header) or None,
            request_id=request.headers.get(state.request_id_header) or None,
            user_resolver=lambda: resolve_user(state.user_resolver),
        )
        setattr(g, _TOKEN_ATTR, seam.enter_request_scope(scope))

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


def resolve_user(resolver: UserResolverArg | None) -> tuple[str | None, list[str] | None]:
    """The authenticated user and roles of the current request (called lazily, once)."""
    if resolver is not None:
        return _normalise(resolver())
    return _flask_login_user()


def _normalise(value: Any) -> tuple[str | None, list[str] | None]:
    if value is None:
        return None, None
    if isinstance(value, str):
        return value or None, None
    if isinstance(value, tuple) and len(value) == 2:
        user, roles = value
        if user is None:
            return None, None
        return str(user), _role_names(roles)
    raise TypeError(
        f"A DBOSFlask user_resolver must return None, a user name, or (user, roles); got {value!r}"
    )


def _role_names(roles: Iterable[Any] | None) -> list[str] | None:
    if roles is None:
        return None
    # Role objects (Flask-Security style) carry a name; plain strings pass through.
    return [r if isinstance(r, str) else str(getattr(r, "name", r)) for r in roles]


def _flask_login_user() -> tuple[str | None, list[str] | None]:
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
    return str(user_id), _role_names(getattr(current_user, "roles", None))
