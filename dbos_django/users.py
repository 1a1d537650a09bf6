"""Who made the request: ``request.user`` read lazily, when its first workflow starts."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from importlib import import_module
from typing import Any


def _load_roles_function(path: str | None) -> Callable[[Any], Any] | None:
    if path is None:
        return None
    module_name, _, attr = path.rpartition(".")
    func: Callable[[Any], Any] = getattr(import_module(module_name), attr)
    return func


def default_roles(user: Any) -> list[str]:
    """The names of the user's groups (plus ``superuser``/``staff`` flags)."""
    roles: list[str] = []
    if getattr(user, "is_superuser", False):
        roles.append("superuser")
    if getattr(user, "is_staff", False):
        roles.append("staff")
    groups = getattr(user, "groups", None)
    if groups is not None and getattr(user, "pk", None) is not None:
        roles.extend(sorted(str(g) for g in groups.values_list("name", flat=True)))
    return roles


def identity_of(request: Any, roles_path: str | None) -> tuple[str | None, list[str] | None]:
    """(user name, roles) of an authenticated request.user; (None, None) if anonymous."""
    user = getattr(request, "user", None)
    if user is None or not getattr(user, "is_authenticated", False):
        return None, None
    roles_fn = _load_roles_function(roles_path) or default_roles
    name = user.get_username() if hasattr(user, "get_username") else str(user)
    return str(name), [str(r) for r in roles_fn(user)]


def make_resolver(
    request: Any, roles_path: str | None
) -> Callable[[], tuple[str | None, list[str] | None]]:
    def resolve() -> tuple[str | None, list[str] | None]:
        if not _loop_running():
            return identity_of(request, roles_path)
        # An async view started the workflow: reading request.user may query the
        # database, which Django forbids on the event loop's thread.
        identity: tuple[str | None, list[str] | None] = _in_thread(
            lambda: identity_of(request, roles_path)
        )
        return identity

    return resolve


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _in_thread(fn: Callable[[], Any]) -> Any:
    from django.db import connections

    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, name="dbos-django-user")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]
