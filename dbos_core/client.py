"""``DBOSClient``: talk to a DBOS application's workflows from any other program.

The client opens the application's system database and works with storage and
serialization alone: it never needs (or starts) a runtime, so it runs in a
script, a web server of another service, or an operator's shell. Waiting is
woken by PostgreSQL NOTIFY through the client's own LISTEN connection, or by
polling on SQLite.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Required, TypedDict, TypeVar

from .error import (
    DBOSDatabaseUnavailableError,
    DBOSException,
    DBOSInitializationError,
    DBOSNonExistentWorkflowError,
)
from .identifiers import check_lookup_id, check_optional_id, check_reused_id
from .observability import current_traceparent
from .options import SetEnqueueOptions
from .runtime import context as ctx
from .runtime.notifier import Notifier, event_key, stream_key, workflow_key
from .serialization import (
    PickleSerializer,
    Serializer,
    decode_workflow_outcome,
    deserialize_value,
    serialize_value,
)
from .types import TERMINAL_STATUSES, StepInfo, WorkflowInputs, WorkflowStatus

if TYPE_CHECKING:
    from .runtime.listener import PostgresListener
    from .storage.system_database import SystemDatabase

R = TypeVar("R")
T = TypeVar("T")

CLIENT_EXECUTOR_ID = "dbos-client"


class EnqueueOptions(TypedDict, total=False):
    """What the client must name explicitly to enqueue a workflow it cannot import."""

    queue_name: Required[str]
    workflow_name: Required[str]
    workflow_id: str
    app_version: str
    workflow_timeout: float
    deduplication_id: str
    priority: int
    queue_partition_key: str
    authenticated_user: str
    authenticated_roles: list[str]
    max_recovery_attempts: int


_OPTION_KEYS = frozenset(EnqueueOptions.__annotations__)


class ClientWorkflowHandle(Generic[R]):
    """A handle the client hands out: the workflow's ID, status and (awaited) result."""

    def __init__(self, client: DBOSClient, workflow_id: str) -> None:
        self._client = client
        self.workflow_id = workflow_id

    def get_workflow_id(self) -> str:
        return self.workflow_id

    def get_status(self) -> WorkflowStatus:
        return self._client.get_workflow_status(self.workflow_id)

    def get_result(
        self, *, polling_interval_sec: float | None = None, timeout: float | None = None
    ) -> R:
        """Wait until the workflow finishes; return its result or raise its error."""
        return self._client._await_result(self.workflow_id, timeout)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"ClientWorkflowHandle({self.workflow_id!r})"


class ClientWorkflowHandleAsync(Generic[R]):
    def __init__(self, client: DBOSClient, workflow_id: str) -> None:
        self._client = client
        self.workflow_id = workflow_id

    def get_workflow_id(self) -> str:
        return self.workflow_id

    async def get_status(self) -> WorkflowStatus:
        return await _in_thread(self._client.get_workflow_status, self.workflow_id)

    async def get_result(
        self, *, polling_interval_sec: float | None = None, timeout: float | None = None
    ) -> R:
        result: R = await _in_thread(self._client._await_result, self.workflow_id, timeout)
        return result


async def _in_thread(fn: Callable[..., T], *args: Any) -> T:
    import asyncio

    return await asyncio.to_thread(fn, *args)


class DBOSClient:
    """A connection to a DBOS application's system database, without the application."""

    def __init__(
        self,
        database_url: str | None = None,
        *,
        system_database_url: str | None = None,
        serializer: Serializer | None = None,
        dbos_system_schema: str = "dbos",
        poll_interval: float = 0.1,
        application_database_url: str | None = None,
    ) -> None:
        from .config import check_database_url
        from .storage.system_database import SystemDatabase

        url = system_database_url or database_url or os.environ.get("DBOS_SYSTEM_DATABASE_URL")
        if url is None:
            raise DBOSInitializationError(
                "DBOSClient needs the application's system database: pass system_database_url=... "
                "or set DBOS_SYSTEM_DATABASE_URL"
            )
        check_database_url(url, "system_database_url")
        self.serializer = serializer or PickleSerializer()
        self.poll_interval = poll_interval
        self._sysdb: SystemDatabase = SystemDatabase(
            url, self.serializer, schema=dbos_system_schema, pool_size=4
        )
        self._notifier = Notifier()
        self._listener: PostgresListener | None = None
        self._listener_lock = threading.Lock()
        self._closed = False
        try:
            self._check_initialized(url)
        except BaseException:
            self._sysdb.close()
            raise

    def _check_initialized(self, url: str) -> None:
        import sqlalchemy as sa

        from .storage.database import safe_url
        from .storage.migrations import LATEST_VERSION, current_version

        db = self._sysdb.db
        if db.is_sqlite:
            path = db.url.database or ""
            # Connecting would create an empty file; an operator's typo should not.
            if not Path(path).exists():
                raise DBOSInitializationError(
                    f"No DBOS system database at {safe_url(db.url)!r}: the file does not exist. "
                    "Launch the DBOS application on it first (or run `dbos-suite migrate`)."
                )
        try:
            with db.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except sa.exc.OperationalError as exc:
            raise DBOSDatabaseUnavailableError(
                f"Cannot connect to the system database {safe_url(db.url)!r}: "
                f"{str(exc.orig or exc).strip()}"
            ) from None
        version = current_version(db)
        if version < LATEST_VERSION:
            raise DBOSInitializationError(
                f"The database {safe_url(db.url)!r} is not an initialised DBOS system database "
                f"(schema version {version}, expected {LATEST_VERSION}). Launch the DBOS "
                "application on it first, or run `dbos-suite migrate --db-url ...`."
            )

    @property
    def system_database(self) -> SystemDatabase:
        if self._closed:
            raise DBOSException("This DBOSClient is closed")
        return self._sysdb

    # -- lifecycle ---------------------------------------------------------------

    def close(self) -> None:
        """Stop listening and close every connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
        self._sysdb.close()

    def destroy(self) -> None:
        self.close()

    def __enter__(self) -> DBOSClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- enqueueing ----------------------------------------------------------------

    def enqueue(
        self, options: EnqueueOptions, *args: Any, **kwargs: Any
    ) -> ClientWorkflowHandle[Any]:
        """Enqueue a workflow by name on a queue by name; a handle to it comes back.

        The row is the same one ``Queue.enqueue`` writes inside the application, so
        the application's queue dispatcher runs it. A ``workflow_id`` makes the call
        idempotent.
        """
        from .storage.workflows import NewWorkflow

        opts = _check_options(options)
        sysdb = self.system_database
        workflow_id = (
            opts.get("workflow_id") or ctx.take_assigned_workflow_id() or str(uuid.uuid4())
        )
        timeout = opts.get("workflow_timeout")
        inputs: WorkflowInputs = {"args": args, "kwargs": kwargs}
        new = NewWorkflow(
            workflow_id=workflow_id,
            name=opts["workflow_name"],
            status="ENQUEUED",
            inputs=serialize_value(
                self.serializer, inputs, f"inputs of workflow {opts['workflow_name']!r}"
            ),
            executor_id=CLIENT_EXECUTOR_ID,
            application_version=opts.get("app_version"),
            authenticated_user=opts.get("authenticated_user"),
            authenticated_roles=opts.get("authenticated_roles"),
            queue_name=opts["queue_name"],
            queue_partition_key=opts.get("queue_partition_key"),
            deduplication_id=opts.get("deduplication_id"),
            priority=opts.get("priority") or 0,
            workflow_timeout_ms=None if timeout is None else int(timeout * 1000),
            # Start-to-completion: the deadline is set when the workflow is dequeued.
            workflow_deadline_epoch_ms=None,
            max_recovery_attempts=opts.get("max_recovery_attempts"),
            # The caller's trace, when it has one: the workflow's spans join it.
            trace_context=current_traceparent(),
        )
        created, row = sysdb.workflows.insert(new)
        if not created and row is not None:
            # Naming a user binds the ID to them, as SetAuthenticatedUser does in the app.
            check_reused_id(
                workflow_id,
                row._mapping,
                new.name,
                new.authenticated_user,
                bound="authenticated_user" in opts,
            )
        return ClientWorkflowHandle(self, workflow_id)

    async def enqueue_async(
        self, options: EnqueueOptions, *args: Any, **kwargs: Any
    ) -> ClientWorkflowHandleAsync[Any]:
        handle = await _in_thread(lambda: self.enqueue(options, *args, **kwargs))
        return ClientWorkflowHandleAsync(self, handle.workflow_id)

    # -- handles and results ---------------------------------------------------------

    def retrieve_workflow(
        self, workflow_id: str, existing_workflow: bool = True
    ) -> ClientWorkflowHandle[Any]:
        check_lookup_id(workflow_id)
        if (
            existing_workflow
            and self.system_database.workflows.get_outcome_row(workflow_id) is None
        ):
            raise DBOSNonExistentWorkflowError(workflow_id)
        return ClientWorkflowHandle(self, workflow_id)

    async def retrieve_workflow_async(
        self, workflow_id: str, existing_workflow: bool = True
    ) -> ClientWorkflowHandleAsync[Any]:
        await _in_thread(self.retrieve_workflow, workflow_id, existing_workflow)
        return ClientWorkflowHandleAsync(self, workflow_id)

    def get_workflow_status(self, workflow_id: str) -> WorkflowStatus:
        from .storage import management as ops

        return ops.get_workflow(self.system_database, workflow_id)

    def _await_result(self, workflow_id: str, timeout: float | None) -> Any:
        sysdb = self.system_database

        def outcome() -> Any:
            row = sysdb.workflows.get_outcome_row(workflow_id)
            if row is None:
                raise DBOSNonExistentWorkflowError(workflow_id)
            return row if row[0] in TERMINAL_STATUSES else None

        row = self._wait_for([workflow_key(workflow_id)], outcome, timeout)
        if row is None:
            raise TimeoutError(f"Workflow {workflow_id!r} did not finish within {timeout}s")
        return decode_workflow_outcome(self.serializer, workflow_id, row[0], row[1], row[2])

    # -- waiting ------------------------------------------------------------------------

    def _ensure_listener(self) -> None:
        if self._sysdb.is_sqlite or self._listener is not None:
            return
        from .runtime.listener import PostgresListener

        with self._listener_lock:
            if self._listener is None:
                url = self._sysdb.db.url.set(drivername="postgresql")
                listener = PostgresListener(
                    url.render_as_string(hide_password=False),
                    self._sysdb.notify_channel,
                    self._notifier,
                )
                listener.start()
                self._listener = listener

    def _wait_for(
        self, keys: list[str], check: Callable[[], T | None], timeout: float | None
    ) -> T | None:
        """Re-run ``check`` whenever a key is notified (or a poll period passes) until it
        returns something or ``timeout`` seconds pass."""
        self._ensure_listener()
        waiter = self._notifier.subscribe(keys)
        give_up = None if timeout is None else time.monotonic() + timeout
        # With LISTEN, a poll is only a safety net; on SQLite it is how changes arrive.
        period = self.poll_interval if self._sysdb.is_sqlite else max(self.poll_interval, 2.0)
        try:
            while True:
                waiter.clear()
                found = check()
                if found is not None:
                    return found
                wait = period
                if give_up is not None:
                    remaining = give_up - time.monotonic()
                    if remaining <= 0:
                        return None
                    wait = min(wait, remaining)
                waiter.wait(wait)
        finally:
            self._notifier.unsubscribe(waiter)

    # -- messages, events, streams ------------------------------------------------------

    def send(
        self,
        destination_id: str,
        message: Any,
        topic: str | None = None,
        idempotency_key: str | None = None,
    ) -> None:
        """Send a message to a workflow; with ``idempotency_key`` it is delivered once."""
        if topic is not None and not isinstance(topic, str):
            raise DBOSException(f"topic must be a string or None, got {topic!r}")
        check_optional_id(idempotency_key, "idempotency_key of send")
        text = serialize_value(self.serializer, message, "message")
        message_uuid = (
            f"client:{destination_id}:{topic or ''}:{idempotency_key}"
            if idempotency_key is not None
            else str(uuid.uuid4())
        )
        # The runtime's store: the same row shape, the same "no topic" and FK error.
        self.system_database.messages.send(destination_id, topic or "", text, message_uuid)

    async def send_async(
        self,
        destination_id: str,
        message: Any,
        topic: str | None = None,
        idempotency_key: str | None = None,
    ) -> None:
        await _in_thread(self.send, destination_id, message, topic, idempotency_key)

    def get_event(self, workflow_id: str, key: str, timeout_seconds: float = 60) -> Any:
        """The value a workflow published under ``key``; waits for it, None on timeout."""
        messages = self.system_database.messages
        found = self._wait_for(
            [event_key(workflow_id, key)],
            lambda: messages.get_event(workflow_id, key),
            timeout_seconds,
        )
        if found is None:
            return None
        return deserialize_value(self.serializer, found, f"event {key!r} of {workflow_id!r}")

    async def get_event_async(self, workflow_id: str, key: str, timeout_seconds: float = 60) -> Any:
        return await _in_thread(self.get_event, workflow_id, key, timeout_seconds)

    def read_stream(self, workflow_id: str, key: str) -> Iterator[Any]:
        """Yield a workflow's stream values in order, as they are written, until it is
        closed or the workflow has finished."""
        from .storage.streams import CLOSED_MARKER

        sysdb = self.system_database
        offset = 0
        while True:
            batch: list[tuple[int, str]] = []
            finished = False

            def check(offset: int = offset) -> bool | None:
                nonlocal batch, finished
                # Read the status first: entries written before it finished are then seen.
                row = sysdb.workflows.get_outcome_row(workflow_id)
                if row is None:
                    raise DBOSNonExistentWorkflowError(workflow_id)
                finished = row[0] in TERMINAL_STATUSES
                batch = sysdb.streams.read_from(workflow_id, key, offset)
                return True if (batch or finished) else None

            self._wait_for([stream_key(workflow_id, key), workflow_key(workflow_id)], check, None)
            for entry_offset, text in batch:
                if text == CLOSED_MARKER:
                    return
                yield deserialize_value(self.serializer, text, f"stream {key!r} value")
                offset = entry_offset + 1
            if finished and not batch:
                return

    # -- management ------------------------------------------------------------------------

    def list_workflows(self, **filters: Any) -> list[WorkflowStatus]:
        """Same filters as ``DBOS.list_workflows``."""
        from .storage import management as ops

        return ops.list_workflows(self.system_database, ops.build_filters(**filters))

    async def list_workflows_async(self, **filters: Any) -> list[WorkflowStatus]:
        return await _in_thread(lambda: self.list_workflows(**filters))

    def list_queued_workflows(self, **filters: Any) -> list[WorkflowStatus]:
        from .storage import management as ops

        checked = ops.build_filters(queues_only=True, load_output=False, **filters)
        return ops.list_workflows(self.system_database, checked)

    def list_workflow_steps(self, workflow: str | WorkflowStatus) -> list[StepInfo]:
        """Steps of a workflow given by ID or by its ``WorkflowStatus``."""
        from .storage import management as ops

        return ops.list_steps(self.system_database, workflow)

    async def list_workflow_steps_async(self, workflow: str | WorkflowStatus) -> list[StepInfo]:
        return await _in_thread(self.list_workflow_steps, workflow)

    def cancel_workflow(self, workflow_id: str) -> None:
        from .storage import management as ops

        ops.cancel_stored(self.system_database, workflow_id)

    def resume_workflow(self, workflow_id: str) -> ClientWorkflowHandle[Any]:
        """Put a cancelled (or stuck) workflow back on the internal queue to run again."""
        from .storage import management as ops

        ops.enqueue_resume(self.system_database, workflow_id)
        return ClientWorkflowHandle(self, workflow_id)

    def fork_workflow(
        self,
        workflow_id: str,
        start_step: int,
        *,
        application_version: str | None = None,
        forked_workflow_id: str | None = None,
    ) -> ClientWorkflowHandle[Any]:
        """A new workflow from ``start_step`` (earlier steps copied), for the application to run."""
        from .storage import management as ops

        new_id = forked_workflow_id or ctx.take_assigned_workflow_id() or str(uuid.uuid4())
        ops.fork(
            self.system_database,
            workflow_id,
            start_step,
            new_workflow_id=new_id,
            application_version=application_version,
            executor_id=CLIENT_EXECUTOR_ID,
            run_here=False,
        )
        return ClientWorkflowHandle(self, new_id)


def _check_options(options: Any) -> EnqueueOptions:
    if not isinstance(options, dict):
        raise DBOSException(
            f"DBOSClient.enqueue takes EnqueueOptions (a dict) first, got {type(options).__name__}"
        )
    unknown = sorted(set(options) - _OPTION_KEYS)
    if unknown:
        raise DBOSException(
            f"Unknown EnqueueOptions key(s) {', '.join(map(repr, unknown))}; known keys are "
            + ", ".join(sorted(_OPTION_KEYS))
        )
    for key in ("queue_name", "workflow_name"):
        value = options.get(key)
        if not isinstance(value, str) or not value:
            raise DBOSException(f"EnqueueOptions[{key!r}] is required (a non-empty string)")
    check_optional_id(options.get("workflow_id"), "EnqueueOptions['workflow_id']")
    for key in ("app_version", "authenticated_user"):
        value = options.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            raise DBOSException(f"EnqueueOptions[{key!r}] must be a non-empty string")
    timeout = options.get("workflow_timeout")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0
    ):
        raise DBOSException(
            f"EnqueueOptions['workflow_timeout'] must be positive seconds, got {timeout!r}"
        )
    # The same checks as SetEnqueueOptions inside the application.
    SetEnqueueOptions(
        deduplication_id=options.get("deduplication_id"),
        priority=options.get("priority"),
        queue_partition_key=options.get("queue_partition_key"),
    )
    return options  # type: ignore[return-value]
