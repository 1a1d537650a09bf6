"""The messaging part of the ``DBOS`` facade: messages, events, streams, sleep, cancel/resume.

Each method is a thin shell: the behaviour is one effect protocol in
``runtime/messaging.py`` (or ``runtime/streams.py``), run by ``run_sync`` for the
sync form and ``run_async`` for the ``_async`` form.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from .runtime import cancellation as _cancellation  # registers the deadline service
from .runtime.effects import Blocking, Protocol, run_async, run_sync

if TYPE_CHECKING:
    from .handles import WorkflowHandle, WorkflowHandleAsync

_ = _cancellation


def _management_protocol(action: str, workflow_id: Any) -> Protocol[None]:
    from .error import DBOSException
    from .runtime import management
    from .runtime.global_state import get_runtime

    if not isinstance(workflow_id, str) or not workflow_id:
        raise DBOSException(
            f"{action}: workflow_id must be a non-empty string, got {workflow_id!r}"
        )
    rt = get_runtime()
    if action == "cancel_workflow":
        yield Blocking(lambda: management.cancel_workflow(rt, workflow_id))
    else:
        yield Blocking(lambda: management.resume_workflow(rt, workflow_id))


class MessagingAPI:
    # -- messages ----------------------------------------------------------------

    @classmethod
    def send(cls, destination_id: str, message: Any, topic: str | None = None) -> None:
        """Send ``message`` to the workflow ``destination_id`` (exactly once from a workflow)."""
        from .runtime.messaging import send_protocol

        run_sync(send_protocol(destination_id, message, topic))

    @classmethod
    async def send_async(cls, destination_id: str, message: Any, topic: str | None = None) -> None:
        from .runtime.messaging import send_protocol

        await run_async(send_protocol(destination_id, message, topic))

    @classmethod
    def recv(cls, topic: str | None = None, timeout_seconds: float = 60) -> Any:
        """Consume the next message for ``topic`` sent to this workflow; None on timeout."""
        from .runtime.messaging import recv_protocol

        return run_sync(recv_protocol(topic, timeout_seconds))

    @classmethod
    async def recv_async(cls, topic: str | None = None, timeout_seconds: float = 60) -> Any:
        from .runtime.messaging import recv_protocol

        return await run_async(recv_protocol(topic, timeout_seconds))

    # -- events ------------------------------------------------------------------

    @classmethod
    def set_event(cls, key: str, value: Any) -> None:
        """Publish (or update) the event ``key`` of the current workflow."""
        from .runtime.messaging import set_event_protocol

        run_sync(set_event_protocol(key, value))

    @classmethod
    async def set_event_async(cls, key: str, value: Any) -> None:
        from .runtime.messaging import set_event_protocol

        await run_async(set_event_protocol(key, value))

    @classmethod
    def get_event(cls, workflow_id: str, key: str, timeout_seconds: float = 60) -> Any:
        """Wait for the event ``key`` of ``workflow_id``; None if it is not set in time."""
        from .runtime.messaging import get_event_protocol

        return run_sync(get_event_protocol(workflow_id, key, timeout_seconds))

    @classmethod
    async def get_event_async(cls, workflow_id: str, key: str, timeout_seconds: float = 60) -> Any:
        from .runtime.messaging import get_event_protocol

        return await run_async(get_event_protocol(workflow_id, key, timeout_seconds))

    @classmethod
    def get_all_events(cls, workflow_id: str) -> dict[str, Any]:
        """The latest value of every event the workflow has published."""
        from .runtime.messaging import get_all_events_protocol

        return run_sync(get_all_events_protocol(workflow_id))

    @classmethod
    async def get_all_events_async(cls, workflow_id: str) -> dict[str, Any]:
        from .runtime.messaging import get_all_events_protocol

        return await run_async(get_all_events_protocol(workflow_id))

    # -- streams -----------------------------------------------------------------

    @classmethod
    def write_stream(cls, key: str, value: Any) -> None:
        """Append ``value`` to this workflow's stream ``key``."""
        from .runtime.streams import write_stream_protocol

        run_sync(write_stream_protocol(key, value))

    @classmethod
    async def write_stream_async(cls, key: str, value: Any) -> None:
        from .runtime.streams import write_stream_protocol

        await run_async(write_stream_protocol(key, value))

    @classmethod
    def close_stream(cls, key: str) -> None:
        """Mark this workflow's stream ``key`` complete; readers stop after its last value."""
        from .runtime.streams import close_stream_protocol

        run_sync(close_stream_protocol(key))

    @classmethod
    async def close_stream_async(cls, key: str) -> None:
        from .runtime.streams import close_stream_protocol

        await run_async(close_stream_protocol(key))

    @classmethod
    def read_stream(cls, workflow_id: str, key: str) -> Iterator[Any]:
        """Yield the stream's values in order until it is closed or its workflow ends."""
        from .runtime.streams import read_stream

        return read_stream(workflow_id, key)

    @classmethod
    def read_stream_async(cls, workflow_id: str, key: str) -> AsyncIterator[Any]:
        from .runtime.streams import read_stream_async

        return read_stream_async(workflow_id, key)

    # -- durable sleep -------------------------------------------------------------

    @classmethod
    def sleep(cls, seconds: float) -> None:
        """Sleep durably: in a workflow the wake-up time is stored and kept across restarts."""
        from .runtime.messaging import sleep_protocol

        run_sync(sleep_protocol(seconds))

    @classmethod
    async def sleep_async(cls, seconds: float) -> None:
        from .runtime.messaging import sleep_protocol

        await run_async(sleep_protocol(seconds))

    # -- cancel and resume ---------------------------------------------------------

    @classmethod
    def cancel_workflow(cls, workflow_id: str) -> None:
        """Set CANCELLED; a running execution stops at the start of its next step."""
        run_sync(_management_protocol("cancel_workflow", workflow_id))

    @classmethod
    async def cancel_workflow_async(cls, workflow_id: str) -> None:
        await run_async(_management_protocol("cancel_workflow", workflow_id))

    @classmethod
    def resume_workflow(cls, workflow_id: str) -> WorkflowHandle[Any]:
        """Continue a cancelled (or stuck) workflow from its last completed step, here, now."""
        from .handles import WorkflowHandle

        run_sync(_management_protocol("resume_workflow", workflow_id))
        return WorkflowHandle(workflow_id)

    @classmethod
    async def resume_workflow_async(cls, workflow_id: str) -> WorkflowHandleAsync[Any]:
        from .handles import WorkflowHandleAsync

        await run_async(_management_protocol("resume_workflow", workflow_id))
        return WorkflowHandleAsync(workflow_id)
