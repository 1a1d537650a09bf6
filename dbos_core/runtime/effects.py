"""Sync and async written once.

Each durable operation (running a step, waiting for a result, receiving a message)
is written a single time as a generator that *yields effects*: "do this blocking
storage call", "call the user's function", "wait for this waiter". Two small
drivers run such a generator: ``run_sync`` performs effects in the calling thread,
``run_async`` awaits them (storage calls go to a thread pool so the loop never
blocks). The logic itself exists once.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from dataclasses import dataclass
from typing import Any, TypeVar

from .notifier import Waiter

R = TypeVar("R")


@dataclass(slots=True)
class Blocking:
    """A blocking call (storage, serialization of large values)."""

    fn: Callable[[], Any]


@dataclass(slots=True)
class UserCall:
    """Call the user's function: awaited when it is a coroutine function."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


@dataclass(slots=True)
class Wait:
    """Wait until the waiter is woken or ``timeout`` seconds pass; sends back woken."""

    waiter: Waiter
    timeout: float | None


Effect = Blocking | UserCall | Wait
Protocol = Generator[Effect, Any, R]

_blocking_pool: ThreadPoolExecutor | None = None


def set_blocking_pool(pool: ThreadPoolExecutor | None) -> None:
    global _blocking_pool
    _blocking_pool = pool


def run_sync(gen: Protocol[R]) -> R:
    send: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = gen.throw(error) if error is not None else gen.send(send)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        error = None
        try:
            if isinstance(effect, Blocking):
                send = effect.fn()
            elif isinstance(effect, UserCall):
                send = effect.fn(*effect.args, **effect.kwargs)
                if inspect.isawaitable(send):
                    send = _run_awaitable_blocking(send)
            else:
                send = effect.waiter.wait(effect.timeout)
        except BaseException as exc:
            send, error = None, exc


async def run_async(gen: Protocol[R]) -> R:
    send: Any = None
    error: BaseException | None = None
    loop = asyncio.get_running_loop()
    while True:
        try:
            effect = gen.throw(error) if error is not None else gen.send(send)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        error = None
        try:
            if isinstance(effect, Blocking):
                # Copy the context so storage code sees the same workflow state.
                ctx = copy_context()
                send = await loop.run_in_executor(_blocking_pool, ctx.run, effect.fn)
            elif isinstance(effect, UserCall):
                send = effect.fn(*effect.args, **effect.kwargs)
                if inspect.isawaitable(send):
                    send = await send
            else:
                send = await effect.waiter.wait_async(effect.timeout)
        except BaseException as exc:
            send, error = None, exc


def _run_awaitable_blocking(awaitable: Awaitable[Any]) -> Any:
    """A coroutine reached from sync code (a sync caller of an async step): run it."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_as_coroutine(awaitable))
    raise RuntimeError(
        "An async DBOS function was called synchronously from inside a running event "
        "loop; await it instead"
    )


async def _as_coroutine(awaitable: Awaitable[Any]) -> Any:
    return await awaitable
