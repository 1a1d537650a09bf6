"""The running system of one ``DBOS`` instance; it alone owns threads and shutdown."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import uuid
from collections.abc import Callable, Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import Context
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from .. import __version__
from ..config import ResolvedConfig, configure_logger
from ..error import DBOSException
from ..observability import Telemetry, build_telemetry
from . import effects
from .context import WorkflowState
from .liveness import FileLiveness, Liveness, PostgresLiveness
from .notifier import Notifier, cancel_key
from .registry import registry
from .threads import DaemonThreadPool

if TYPE_CHECKING:
    from ..storage.system_database import SystemDatabase

T = TypeVar("T")


class Service(Protocol):
    """A background part of the runtime (queue dispatcher, scheduler, admin server)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


# Factories the optional parts register at import time; each gets the runtime at launch.
service_factories: list[Callable[[Runtime], Service | None]] = []

# Called on a workflow thread after each piece of work it ran (adapters release per-thread
# resources there, as Django closes its connections at the end of a request).
after_work_hooks: list[Callable[[], None]] = []


class DBOSDestroyedError(DBOSException):
    """The runtime was destroyed while a workflow ran; it stays PENDING for recovery."""

    code = "DESTROYED"


class Runtime:
    def __init__(self, config: ResolvedConfig) -> None:
        from ..storage.system_database import SystemDatabase

        self.config = config
        self.logger: logging.Logger = configure_logger(config.log_level)
        self.serializer = config.serializer
        self.executor_id = config.executor_id
        self.sysdb: SystemDatabase = SystemDatabase(
            config.system_database_url,
            config.serializer,
            schema=config.dbos_system_schema,
            pool_size=config.sys_db_pool_size,
            engine_kwargs=config.db_engine_kwargs,
            engine=config.system_database_engine,
        )
        self.notifier = Notifier()
        # Traces, logs and metrics (dbos_core/observability); a no-op when all are off.
        self.telemetry: Telemetry = build_telemetry(config)
        self.app_version: str = config.application_version or ""
        self.launched = False
        self.stopped = False
        # The process that launched; a forked child must launch its own runtime.
        self.pid: int | None = None
        # Names this running instance among processes that share an executor ID.
        self.instance_id = uuid.uuid4().hex
        self.liveness: Liveness | None = None
        self._lock = threading.Lock()
        self.active: dict[str, WorkflowState] = {}
        self.workflow_pool: DaemonThreadPool | None = None
        self.blocking_pool: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self.services: list[Service] = []
        # Called with each workflow that starts executing here (deadline watch, remote cancel).
        self.claim_hooks: list[Callable[[WorkflowState], None]] = []
        self._listener: Any = None
        # Cross-process changes reach us by NOTIFY on PostgreSQL; on SQLite only by polling.
        self.poll_interval = (
            config.notification_poll_interval
            if self.sysdb.is_sqlite
            else max(config.notification_poll_interval, 2.0)
        )

    # -- lifecycle -----------------------------------------------------------

    def launch(self, *, start_services: bool = True) -> None:
        # start_services=False: a management session (CLI) that inspects workflows
        # without dispatching queues or schedules in its short-lived process.
        self.pid = os.getpid()
        self.telemetry.start(self)
        self.sysdb.open(self.config.database_connect_timeout)
        if not self.app_version:
            self.app_version = registry.compute_app_version(__version__)
        self.workflow_pool = DaemonThreadPool(self.config.max_workflow_threads, "dbos-workflow")
        self.blocking_pool = ThreadPoolExecutor(
            max_workers=max(4, self.config.sys_db_pool_size), thread_name_prefix="dbos-io"
        )
        effects.set_blocking_pool(self.blocking_pool)
        self.liveness = self._make_liveness()
        self.liveness.start()
        if not self.sysdb.is_sqlite:
            from .listener import PostgresListener

            url = self.sysdb.db.url.set(drivername="postgresql")
            self._listener = PostgresListener(
                url.render_as_string(hide_password=False), self.sysdb.notify_channel, self.notifier
            )
            self._listener.start()
        self.launched = True
        for factory in service_factories if start_services else ():
            service = factory(self)
            if service is not None:
                service.start()
                self.services.append(service)
        self.logger.info(
            "DBOS launched: executor %s, application version %s", self.executor_id, self.app_version
        )

    def _make_liveness(self) -> Liveness:
        url = self.sysdb.db.url
        if self.sysdb.is_sqlite:
            return FileLiveness(str(url.database), self.instance_id)
        conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        return PostgresLiveness(conninfo, self.sysdb.db.schema, self.instance_id)

    def destroy(self) -> None:
        self.stopped = True
        for service in reversed(self.services):
            try:
                service.stop()
            except Exception as exc:
                self.logger.warning("Error stopping %s: %s", type(service).__name__, exc)
        self.services.clear()
        # Running workflows notice `stopped` at their next step and stay PENDING.
        with self._lock:
            states = list(self.active.values())
        for state in states:
            state.cancelled.set()
            self.notifier.notify(cancel_key(state.workflow_id))
        if self._listener is not None:
            self._listener.stop()
        if self.liveness is not None:
            # After this, other processes may take over what is still PENDING here.
            self.liveness.stop()
        if self.workflow_pool is not None:
            self.workflow_pool.shutdown()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._loop_thread is not None:
                self._loop_thread.join(timeout=5)
        if self.blocking_pool is not None:
            self.blocking_pool.shutdown(wait=False, cancel_futures=True)
        if effects._blocking_pool is self.blocking_pool:
            effects.set_blocking_pool(None)
        self.telemetry.stop()
        self.sysdb.close()

    def forked_away(self) -> bool:
        """True in a child forked from the process that launched: no threads came along."""
        return self.pid is not None and self.pid != os.getpid()

    def abandon_after_fork(self) -> None:
        """Drop the parent's connections without closing them (they are the parent's)."""
        self.stopped = True
        self.telemetry.abandon()
        if self.sysdb.db.owns_engine:
            self.sysdb.db.engine.dispose(close=False)

    # -- running work ----------------------------------------------------------

    def claim(self, state: WorkflowState) -> WorkflowState | None:
        """Mark a workflow as executing here; returns the existing execution if any."""
        with self._lock:
            existing = self.active.get(state.workflow_id)
            if existing is not None:
                return existing
            self.active[state.workflow_id] = state
        for hook in self.claim_hooks:
            hook(state)
        return None

    def release(self, workflow_id: str) -> None:
        with self._lock:
            self.active.pop(workflow_id, None)

    def is_active(self, workflow_id: str) -> bool:
        with self._lock:
            return workflow_id in self.active

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        """Run ``fn`` on a workflow thread in a fresh context (nothing of the caller's leaks)."""
        if self.workflow_pool is None or self.stopped:
            raise DBOSDestroyedError("DBOS is not running")
        return self.workflow_pool.submit(Context().run, _with_after_work_hooks, fn)

    def run_coroutine(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Run a coroutine on the runtime's own event loop thread."""
        loop = self._background_loop()
        return asyncio.run_coroutine_threadsafe(coro, loop)

    def _background_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    ready.set()
                    loop.run_forever()
                    loop.close()

                self._loop_thread = threading.Thread(target=run, name="dbos-loop", daemon=True)
                self._loop_thread.start()
                ready.wait()
                self._loop = loop
            return self._loop


def _with_after_work_hooks(fn: Callable[[], T]) -> T:
    try:
        return fn()
    finally:
        for hook in list(after_work_hooks):
            try:
                hook()
            except Exception as exc:
                logging.getLogger("dbos").warning("after-work hook %r failed: %s", hook, exc)
