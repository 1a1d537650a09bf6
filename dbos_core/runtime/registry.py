"""Which functions and classes are durable, under which names.

Decorators register here at import time, before any ``DBOS`` instance exists;
recovery looks functions up by the name stored with each workflow.
"""

from __future__ import annotations

import hashlib
import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from ..error import DBOSConflictingRegistrationError

Kind = Literal["workflow", "step", "transaction"]
DEFAULT_MAX_RECOVERY_ATTEMPTS = 100


@dataclass
class StepOptions:
    retries_allowed: bool = False
    interval_seconds: float = 1.0
    max_attempts: int = 3
    backoff_rate: float = 2.0


@dataclass
class Registration:
    name: str
    kind: Kind
    func: Callable[..., Any]
    identity: str
    is_async: bool
    # Set for methods: the class's registered name (filled in by @DBOS.dbos_class).
    class_name: str | None = None
    is_method: bool = False
    max_recovery_attempts: int = DEFAULT_MAX_RECOVERY_ATTEMPTS
    step_options: StepOptions = field(default_factory=StepOptions)
    extra: dict[str, Any] = field(default_factory=dict)


def _looks_like_method(func: Callable[..., Any]) -> bool:
    qualname = getattr(func, "__qualname__", "")
    parts = qualname.split(".")
    if len(parts) < 2 or parts[-2] == "<locals>":
        return False
    params = list(inspect.signature(func).parameters)
    return bool(params) and params[0] in ("self", "cls")


class Registry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.functions: dict[str, Registration] = {}
        self.classes: dict[str, type] = {}
        self.instances: dict[tuple[str, str], Any] = {}
        # Hooks run when a workflow is registered (the scheduler uses one).
        self.on_register: list[Callable[[Registration], None]] = []

    def register(
        self, func: Callable[..., Any], kind: Kind, name: str | None = None, **extra: Any
    ) -> Registration:
        if getattr(func, "__dbos_registration__", None) is not None:
            existing: Registration = func.__dbos_registration__  # type: ignore[attr-defined]
            raise DBOSConflictingRegistrationError(
                f"{func.__qualname__} is already a DBOS {existing.kind}; a function can carry "
                f"only one of @DBOS.workflow, @DBOS.step and @DBOS.transaction (not also {kind})"
            )
        reg_name = name or func.__qualname__
        identity = f"{func.__module__}:{func.__qualname__}"
        reg = Registration(
            name=reg_name,
            kind=kind,
            func=func,
            identity=identity,
            is_async=inspect.iscoroutinefunction(func),
            is_method=_looks_like_method(func),
            **extra,
        )
        with self._lock:
            previous = self.functions.get(reg_name)
            if previous is not None and (previous.kind != kind or previous.identity != identity):
                raise DBOSConflictingRegistrationError(
                    f"Cannot register {kind} {identity} as {reg_name!r}: that name already "
                    f"belongs to the {previous.kind} {previous.identity}"
                )
            # Re-registering the same function (a re-import, a redefinition in a loop) replaces it.
            self.functions[reg_name] = reg
        for hook in list(self.on_register):
            hook(reg)
        return reg

    def get(self, name: str) -> Registration | None:
        return self.functions.get(name)

    def register_class(self, cls: type, name: str) -> None:
        with self._lock:
            previous = self.classes.get(name)
            if previous is not None and previous.__module__ != cls.__module__:
                raise DBOSConflictingRegistrationError(
                    f"Class name {name!r} is already registered for {previous.__module__}.{previous.__qualname__}"
                )
            self.classes[name] = cls

    def register_instance(self, class_name: str, config_name: str, instance: Any) -> None:
        with self._lock:
            self.instances[(class_name, config_name)] = instance

    def workflows(self) -> list[Registration]:
        return [r for r in self.functions.values() if r.kind == "workflow"]

    def compute_app_version(self, library_version: str) -> str:
        """A hash of every workflow's source, so changed code is never recovered by mistake."""
        digest = hashlib.sha256(library_version.encode())
        for reg in sorted(self.workflows(), key=lambda r: r.name):
            digest.update(reg.name.encode())
            try:
                digest.update(inspect.getsource(reg.func).encode())
            except (OSError, TypeError):
                digest.update(reg.identity.encode())
        return digest.hexdigest()[:32]


registry = Registry()
