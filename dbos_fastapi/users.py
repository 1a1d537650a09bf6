"""Who made the request: resolved lazily, when the request starts its first workflow."""

from __future__ import annotations

from collections.abc import Callable, MutableMapping, Sequence
from typing import Any

from starlette.requests import HTTPConnection

from dbos_core import integration

# What a resolver may return: nothing (anonymous), a user name, (user, roles) or
# (user, roles, assumed_role).
ResolverResult = str | tuple[Any, ...] | integration.Identity | None
UserResolver = Callable[[HTTPConnection], ResolverResult]

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
    connection.scope[SCOPE_KEY] = integration.normalize_identity(
        (user, None if roles is None else list(roles), assumed_role)
    )


def resolve_identity(
    scope: MutableMapping[str, Any], resolver: UserResolver | None
) -> integration.Identity:
    """Who made the request (``integration.ANONYMOUS`` when nobody is authenticated)."""
    explicit = scope.get(SCOPE_KEY)
    if explicit is not None:
        return integration.normalize_identity(explicit)
    if resolver is not None:
        return integration.normalize_identity(resolver(HTTPConnection(scope)))
    return _from_starlette_auth(scope)


def _from_starlette_auth(scope: MutableMapping[str, Any]) -> integration.Identity:
    # Set by starlette.middleware.authentication.AuthenticationMiddleware, which may sit
    # inside us: the scope is shared, and we read it only when a workflow starts.
    user = scope.get("user")
    if user is None or not getattr(user, "is_authenticated", False):
        return integration.ANONYMOUS
    name = getattr(user, "display_name", None) or getattr(user, "username", None)
    scopes = getattr(scope.get("auth"), "scopes", None)
    return integration.normalize_identity(
        (name, None if scopes is None else [str(s) for s in scopes])
    )
