"""The ``DBOS`` facade: lifecycle, decorators, starting and retrieving workflows.

The seeds use ``DBOS`` both as a class (``@DBOS.workflow()``, ``DBOS.launch()``)
and through an instance (``dbos_instance.step()``); every method is therefore a
classmethod acting on the one process-wide runtime. Each area of the API lives
in its own mixin module; this one holds the core.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Generic, ParamSpec, TypeVar, cast

from .api_management import ManagementAPI
from .api_messaging import MessagingAPI
from .api_queues import QueueAPI
from .api_transactions import TransactionAPI
from .config import DBOSConfig, ResolvedConfig, resolve_config
from .error import (
    DBOSConflictingRegistrationError,
    DBOSException,
    DBOSInitializationError,
    DBOSNonExistentWorkflowError,
)
from .handles import WorkflowHandle, WorkflowHandleAsync
from .identifiers import check_lookup_id
from .runtime import context as ctx
from .runtime import global_state
from .runtime import recovery as _recovery  # noqa: F401  (registers the service)
from .runtime.effects import run_async, run_sync
from .runtime.registry import DEFAULT_MAX_RECOVERY_ATTEMPTS, Registration, StepOptions, registry
from .runtime.runtime import Runtime
from .runtime.steps import step_protocol
from .runtime.workflows import call_protocol, dispatch, start_protocol

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


class classproperty(Generic[T]):
    """A read-only property of the class, readable through instances too."""

    def __init__(self, fget: Callable[[Any], T]) -> None:
        self.fget = fget
        self.__doc__ = fget.__doc__

    def __get__(self, obj: Any, owner: type | None = None) -> T:
        return self.fget(owner)


_instance_lock = threading.RLock()


def registration_of(func: Callable[..., Any]) -> tuple[Registration, tuple[Any, ...]]:
    """The registration behind a decorated function (or bound method) and the bound self."""
    bound_self: tuple[Any, ...] = ()
    target: Any = func
    if inspect.ismethod(func):
        bound_self = (func.__self__,)
        target = func.__func__
    reg = getattr(target, "__dbos_registration__", None)
    if reg is None:
        raise DBOSException(
            f"{getattr(func, '__qualname__', func)!r} is not a DBOS workflow: decorate it with "
            "@DBOS.workflow() first"
        )
    return reg, bound_self


class DBOS(MessagingAPI, QueueAPI, ManagementAPI, TransactionAPI):
    """Durable workflows and steps; configure once, then ``DBOS.launch()``."""

    logger: logging.Logger = logging.getLogger("dbos")
    _current: DBOS | None = None

    def __new__(
        cls,
        config: DBOSConfig | None = None,
        *,
        system_database_url: str | None = None,
        **_ignored: Any,
    ) -> DBOS:
        with _instance_lock:
            previous = DBOS._current
            if previous is not None:
                cls.logger.warning(
                    "A DBOS instance already exists; destroying it before configuring a new one"
                )
                DBOS.destroy()
            # Becomes the current instance only once __init__ has validated its config.
            return super().__new__(cls)

    def __init__(
        self,
        config: DBOSConfig | None = None,
        *,
        system_database_url: str | None = None,
        **_ignored: Any,
    ) -> None:
        raw: dict[str, Any] = dict(config) if config is not None else {}
        if config is not None and not isinstance(config, dict):
            raise DBOSInitializationError(
                f"DBOS(config=...) takes a DBOSConfig dict, got {type(config).__name__}"
            )
        if system_database_url is not None:
            raw["system_database_url"] = system_database_url
        raw.setdefault("name", "dbos_app")
        self.config: ResolvedConfig = resolve_config(raw)
        self._runtime = Runtime(self.config)
        with _instance_lock:
            DBOS._current = self
            global_state.set_runtime(self._runtime)

    # -- lifecycle ---------------------------------------------------------------

    @classmethod
    def launch(cls) -> None:
        """Connect, migrate the system database, start background work, recover workflows.

        Calling it again on a launched instance does nothing.
        """
        with _instance_lock:
            instance = DBOS._current
            if instance is None:
                raise DBOSInitializationError(
                    "DBOS.launch() called before DBOS(config=...): configure DBOS first"
                )
            rt = instance._runtime
            if rt.launched and rt.forked_away():
                # A forked worker: start afresh on new connections and threads.
                rt.abandon_after_fork()
                rt = instance._runtime = Runtime(instance.config)
                global_state.set_runtime(rt)
            if rt.launched:
                return
            if rt.stopped:
                raise DBOSInitializationError("This DBOS instance was destroyed; create a new one")
            rt.launch()

    @classmethod
    def destroy(cls, *, destroy_registry: bool = False) -> None:
        """Stop background work and close connections. Running workflows stay PENDING."""
        with _instance_lock:
            instance = DBOS._current
            DBOS._current = None
            if instance is None:
                return
            rt = instance._runtime
            if global_state.peek_runtime() is rt:
                global_state.set_runtime(None)
            if rt.launched:
                rt.destroy()
            else:
                rt.stopped = True
                rt.telemetry.stop()  # a launch that failed may have started it
                rt.sysdb.close()
            if destroy_registry:
                registry.functions.clear()
                registry.instances.clear()

    @classmethod
    def reset_system_database(cls) -> None:
        """Drop and recreate every system table. Only before ``launch()``."""
        instance = DBOS._current
        if instance is None:
            raise DBOSInitializationError(
                "Configure DBOS(config=...) before reset_system_database()"
            )
        rt = instance._runtime
        if rt.launched:
            raise DBOSInitializationError(
                "reset_system_database() must be called before DBOS.launch() (or after destroy)"
            )
        rt.sysdb.db.wait_until_reachable(rt.config.database_connect_timeout)
        rt.sysdb.reset()

    # -- decorators --------------------------------------------------------------

    @classmethod
    def workflow(
        cls,
        *,
        name: str | None = None,
        max_recovery_attempts: int | None = DEFAULT_MAX_RECOVERY_ATTEMPTS,
    ) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Make a function a durable workflow."""
        if max_recovery_attempts is not None and (
            not isinstance(max_recovery_attempts, int) or max_recovery_attempts < 1
        ):
            raise DBOSException(
                f"max_recovery_attempts must be a positive integer, got {max_recovery_attempts!r}"
            )

        def decorator(func: Callable[P, R]) -> Callable[P, R]:
            reg = registry.register(
                func,
                "workflow",
                name=name,
                max_recovery_attempts=max_recovery_attempts or DEFAULT_MAX_RECOVERY_ATTEMPTS,
            )
            wrapper: Any
            if reg.is_async:

                async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                    return await run_async(call_protocol(reg, args, kwargs))

                async def start_async(*args: Any, **kwargs: Any) -> WorkflowHandleAsync[Any]:
                    return await cls.start_workflow_async(wrapper, *args, **kwargs)

                wrapper = functools.wraps(func)(async_wrapper)
                wrapper.start = start_async
            else:

                def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                    return run_sync(call_protocol(reg, args, kwargs))

                def start(*args: Any, **kwargs: Any) -> WorkflowHandle[Any]:
                    return cls.start_workflow(wrapper, *args, **kwargs)

                wrapper = functools.wraps(func)(sync_wrapper)
                wrapper.start = start
            wrapper.__dbos_registration__ = reg
            return cast(Callable[P, R], wrapper)

        return decorator

    @classmethod
    def step(
        cls,
        *,
        name: str | None = None,
        retries_allowed: bool = False,
        interval_seconds: float = 1.0,
        max_attempts: int = 3,
        backoff_rate: float = 2.0,
    ) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Make a function a step: checkpointed once per workflow, retried if allowed."""
        options = _step_options(retries_allowed, interval_seconds, max_attempts, backoff_rate)

        def decorator(func: Callable[P, R]) -> Callable[P, R]:
            reg = registry.register(func, "step", name=name, step_options=options)
            wrapper: Any
            if reg.is_async:

                async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                    return await run_async(step_protocol(reg.name, options, func, args, kwargs))

                wrapper = functools.wraps(func)(async_wrapper)
            else:

                def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                    return run_sync(step_protocol(reg.name, options, func, args, kwargs))

                wrapper = functools.wraps(func)(sync_wrapper)
            wrapper.__dbos_registration__ = reg
            return cast(Callable[P, R], wrapper)

        return decorator

    @classmethod
    def dbos_class(cls, class_name: str | None = None) -> Callable[[type[T]], type[T]]:
        """Register a class whose instance methods are workflows or steps."""

        def decorator(klass: type[T]) -> type[T]:
            name = class_name or klass.__qualname__
            registry.register_class(klass, name)
            klass.__dbos_class_name__ = name  # type: ignore[attr-defined]
            for attr in vars(klass).values():
                target = getattr(attr, "__func__", attr)
                reg = getattr(target, "__dbos_registration__", None)
                if isinstance(reg, Registration):
                    reg.class_name = name
            return klass

        return decorator

    # -- starting and finding workflows -------------------------------------------

    @classmethod
    def start_workflow(
        cls, func: Callable[P, R], *args: P.args, **kwargs: P.kwargs
    ) -> WorkflowHandle[R]:
        """Start a workflow in the background and return a handle to it."""
        reg, bound = registration_of(func)
        _require_workflow(reg)
        full_args = (*bound, *args)
        started = run_sync(start_protocol(reg, full_args, kwargs, "start"))
        if started.created and started.state is not None:
            rt = global_state.get_runtime()
            dispatch(rt, reg, started.state, started.call_args, started.call_kwargs)
        return WorkflowHandle(started.workflow_id)

    @classmethod
    async def start_workflow_async(
        cls,
        func: Callable[P, Coroutine[Any, Any, R]] | Callable[P, R],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> WorkflowHandleAsync[R]:
        """Start a workflow in the background; a coroutine workflow runs on this event loop."""
        reg, bound = registration_of(func)
        _require_workflow(reg)
        full_args = (*bound, *args)
        started = await run_async(start_protocol(reg, full_args, kwargs, "start"))
        if started.created and started.state is not None:
            rt = global_state.get_runtime()
            dispatch(rt, reg, started.state, started.call_args, started.call_kwargs, same_loop=True)
        return WorkflowHandleAsync(started.workflow_id)

    @classmethod
    def retrieve_workflow(
        cls, workflow_id: str, existing_workflow: bool = True
    ) -> WorkflowHandle[Any]:
        """A handle to a workflow by ID (checked to exist unless ``existing_workflow=False``)."""
        check_lookup_id(workflow_id)
        if existing_workflow:
            rt = global_state.get_runtime()
            if rt.sysdb.workflows.get_outcome_row(workflow_id) is None:
                raise DBOSNonExistentWorkflowError(workflow_id)
        return WorkflowHandle(workflow_id)

    @classmethod
    async def retrieve_workflow_async(
        cls, workflow_id: str, existing_workflow: bool = True
    ) -> WorkflowHandleAsync[Any]:
        import asyncio

        await asyncio.to_thread(cls.retrieve_workflow, workflow_id, existing_workflow)
        return WorkflowHandleAsync(workflow_id)

    # -- what is running here ---------------------------------------------------------

    @classproperty
    def workflow_id(cls) -> str | None:
        """The ID of the workflow running in this context, or None."""
        state = ctx.current_workflow.get()
        return None if state is None else state.workflow_id

    @classproperty
    def step_id(cls) -> int | None:
        """The function ID of the step running in this context, or None."""
        step = ctx.current_step.get()
        return None if step is None else step.function_id

    @classproperty
    def authenticated_user(cls) -> str | None:
        state = ctx.current_workflow.get()
        return None if state is None else state.authenticated_user

    @classproperty
    def authenticated_roles(cls) -> list[str] | None:
        state = ctx.current_workflow.get()
        return None if state is None else state.authenticated_roles

    @classproperty
    def assumed_role(cls) -> str | None:
        state = ctx.current_workflow.get()
        return None if state is None else state.assumed_role

    @classproperty
    def request_id(cls) -> str | None:
        state = ctx.current_workflow.get()
        if state is not None:
            return state.request_id
        request = ctx.request_context.get()
        return None if request is None else request.request_id

    @classproperty
    def application_version(cls) -> str | None:
        rt = global_state.peek_runtime()
        return None if rt is None else rt.app_version

    @classproperty
    def executor_id(cls) -> str | None:
        rt = global_state.peek_runtime()
        return None if rt is None else rt.executor_id


def _require_workflow(reg: Registration) -> None:
    if reg.kind != "workflow":
        raise DBOSConflictingRegistrationError(
            f"{reg.name!r} is a DBOS {reg.kind}, not a workflow; only workflows can be started"
        )


def _step_options(
    retries_allowed: bool, interval_seconds: float, max_attempts: int, backoff_rate: float
) -> StepOptions:
    def bad(name: str, value: Any, expected: str) -> DBOSException:
        return DBOSException(f"@DBOS.step({name}={value!r}): {name} must be {expected}")

    if not isinstance(retries_allowed, bool):
        raise bad("retries_allowed", retries_allowed, "a bool")
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
        raise bad("max_attempts", max_attempts, "an integer of at least 1")
    if (
        isinstance(interval_seconds, bool)
        or not isinstance(interval_seconds, (int, float))
        or not math.isfinite(interval_seconds)
        or interval_seconds < 0
    ):
        raise bad("interval_seconds", interval_seconds, "a number of seconds >= 0")
    if (
        isinstance(backoff_rate, bool)
        or not isinstance(backoff_rate, (int, float))
        or not math.isfinite(backoff_rate)
        or backoff_rate < 1
    ):
        raise bad("backoff_rate", backoff_rate, "a number >= 1")
    return StepOptions(retries_allowed, float(interval_seconds), max_attempts, float(backoff_rate))
