"""Who made the request: resolved lazily, when the request starts its first workflow."""

from __future__ import annotations

from collections.abc import Callable, MutableMapping, Sequence
from typing import Any

from starlette.requests import HTTPConnection

# What a resolver may return: nothing (anonymous), a user name, (user, roles) or
# (user, roles, assumed_role).
Identity = str | tuple[Any, ...] | None
UserResolver = Callable[[HTTPConnection], Identity]

# Where set_authenticated_user() leaves the identity in the ASGI scope.
SCOPE_KEY = "dbos.authenticated_user"


def set_authenticated_user(
    connection: HTTPConnection,
    user: str | None,
    roles: Sequence[str] | None = None,
    assumed_role: str | None = None,
) -> None:
    """Record the request's user from a FastAPI dependency (or any handler).

    It wins over the resolver and over Starlette's ``request.user``; call it before the
    request starts its first workflow.
    """
    connection.scope[SCOPE_KEY] = (user, None if roles is None else list(roles), assumed_role)


def resolve_identity(
    scope: MutableMapping[str, Any], resolver: UserResolver | None
) -> tuple[str | None, list[str] | None, str | None]:
    """(user, roles, assumed_role) of the request; all None when it is anonymous."""
    explicit = scope.get(SCOPE_KEY)
    if explicit is not None:
        return _normalize(explicit)
    if resolver is not None:
        return _normalize(resolver(HTTPConnection(scope)))
    return _from_starlette_auth(scope)


def _from_starlette_auth(
    scope: MutableMapping[str, Any],
) -> tuple[str | None, list[str] | None, str | None]:
    # Set by starlette.middleware.authentication.AuthenticationMiddleware, which may sit
    # inside us: the scope is shared, and we read it only when a workflow starts.
    user = scope.get("user")
    if user is None or not getattr(user, "is_authenticated", False):
        return None, None, None
    name = getattr(user, "display_name", None) or getattr(user, "username", None)
    auth = scope.get("auth")
    scopes = getattr(auth, "scopes", None)
    return (
        None if name is None else str(name),
        None if scopes is None else [str(s) for s in scopes],
        None,
    )


def _normalize(identity: Identity) -> tuple[str | None, list[str] | None, str | None]:
    if identity is None:
        return None, None, None
    if isinstance(identity, str):
        return identity, None, None
    if isinstance(identity, tuple) and 1 <= len(identity) <= 3:
        user = identity[0]
        roles = identity[1] if len(identity) > 1 else None
        role = identity[2] if len(identity) > 2 else None
        if user is None:
            return None, None, None
        if roles is not None and (isinstance(roles, str) or not isinstance(roles, Sequence)):
            raise TypeError(f"The roles of user {user!r} must be a list of strings, got {roles!r}")
        return (
            str(user),
            None if roles is None else [str(r) for r in roles],
            None if role is None else str(role),
        )
    raise TypeError(
        "A DBOS user resolver must return None, a user name, (user, roles) or "
        f"(user, roles, assumed_role); got {identity!r}"
    )
