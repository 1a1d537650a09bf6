"""Queues: enqueueing workflows and steps, flow control, options, listing."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest

from dbos_core import DBOS, Queue, SetEnqueueOptions, SetWorkflowID, SetWorkflowTimeout
from dbos_core.error import (
    DBOSAwaitedWorkflowCancelledError,
    DBOSException,
    DBOSQueueDeduplicatedError,
    DBOSQueueError,
)


def qname() -> str:
    return f"q-{uuid.uuid4().hex[:8]}"


class Gauge:
    """Counts how many tasks run at once, from inside the tasks."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0
        self.order: list[Any] = []

    def enter(self, item: Any) -> None:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
            self.order.append(item)

    def leave(self) -> None:
        with self.lock:
            self.running -= 1


def test_enqueue_workflow_returns_handle_and_result(dbos: type[DBOS]) -> None:
    queue = Queue(qname())

    @DBOS.workflow()
    def double(x: int) -> int:
        return x * 2

    handle = queue.enqueue(double, 21)
    assert handle.get_result() == 42
    status = handle.get_status()
    assert status.status == "SUCCESS"
    assert status.queue_name == queue.name
    assert status.dequeued_at is not None
    assert status.dequeued_at >= status.created_at


def test_enqueue_single_step_and_async_step(dbos: type[DBOS]) -> None:
    queue = Queue(qname())
    calls: list[int] = []

    @DBOS.step()
    def add_one(x: int) -> int:
        calls.append(x)
        return x + 1

    handle = queue.enqueue(add_one, 1)
    assert handle.get_result() == 2
    assert calls == [1]
    steps = handle.get_status()
    assert steps.queue_name == queue.name

    @DBOS.step()
    async def add_two(x: int) -> int:
        return x + 2

    handle2 = queue.enqueue(add_two, 5)
    assert handle2.get_result() == 7


async def test_enqueue_async_coroutine_workflow(dbos: type[DBOS]) -> None:
    queue = Queue(qname())

    @DBOS.workflow()
    async def wf(x: str) -> str:
        return x.upper()

    handle = await queue.enqueue_async(wf, "abc")
    assert await handle.get_result() == "ABC"


def test_concurrency_one_is_fifo_and_sequential(dbos: type[DBOS]) -> None:
    queue = Queue(qname(), concurrency=1)
    gauge = Gauge()

    @DBOS.workflow()
    def task(i: int) -> int:
        gauge.enter(i)
        time.sleep(0.01)
        gauge.leave()
        return i

    handles = []
    for i in range(8):
        handles.append(queue.enqueue(task, i))
        time.sleep(0.002)  # distinct enqueue timestamps: FIFO is by enqueue time
    assert [h.get_result() for h in handles] == list(range(8))
    assert gauge.order == list(range(8))
    assert gauge.peak == 1


def test_worker_concurrency_limits_this_process(dbos: type[DBOS]) -> None:
    queue = Queue(qname(), worker_concurrency=3)
    gauge = Gauge()

    @DBOS.workflow()
    def task(i: int) -> int:
        gauge.enter(i)
        time.sleep(0.02)
        gauge.leave()
        return i

    handles = [queue.enqueue(task, i) for i in range(12)]
    assert sorted(h.get_result() for h in handles) == list(range(12))
    assert gauge.peak == 3


def test_global_concurrency_counts_pending_rows(dbos: type[DBOS]) -> None:
    queue = Queue(qname(), concurrency=2)
    gauge = Gauge()

    @DBOS.workflow()
    def task(i: int) -> int:
        gauge.enter(i)
        time.sleep(0.02)
        gauge.leave()
        return i

    handles = [queue.enqueue(task, i) for i in range(8)]
    assert sorted(h.get_result() for h in handles) == list(range(8))
    assert gauge.peak == 2


def test_rate_limiter_caps_starts_per_period(dbos: type[DBOS]) -> None:
    period = 0.4
    queue = Queue(qname(), limiter={"limit": 2, "period": period})

    @DBOS.workflow()
    def task(i: int) -> int:
        return i

    handles = [queue.enqueue(task, i) for i in range(5)]
    assert sorted(h.get_result() for h in handles) == list(range(5))
    starts = sorted(h.get_status().dequeued_at or 0 for h in handles)
    # No window of one period holds more than `limit` starts.
    for i in range(len(starts) - 2):
        assert starts[i + 2] - starts[i] >= period * 1000
    assert starts[-1] - starts[0] >= 2 * period * 1000


def test_deduplication_id_refuses_while_enqueued_or_pending(dbos: type[DBOS]) -> None:
    queue = Queue(qname())
    release = threading.Event()

    @DBOS.workflow()
    def blocker(x: int) -> int:
        release.wait(10)
        return x

    with SetEnqueueOptions(deduplication_id="user-1"):
        first = queue.enqueue(blocker, 1)
    with SetEnqueueOptions(deduplication_id="user-1"), pytest.raises(DBOSQueueDeduplicatedError):
        queue.enqueue(blocker, 2)
    # Another queue, or another ID, is not a duplicate.
    other = Queue(qname())
    with SetEnqueueOptions(deduplication_id="user-1"):
        second_queue = other.enqueue(blocker, 3)
    with SetEnqueueOptions(deduplication_id="user-2"):
        other_id = queue.enqueue(blocker, 4)
    release.set()
    assert first.get_result() == 1
    assert second_queue.get_result() == 3
    assert other_id.get_result() == 4
    # Finished: the deduplication ID is free again.
    with SetEnqueueOptions(deduplication_id="user-1"):
        again = queue.enqueue(blocker, 5)
    assert again.get_result() == 5


def test_priority_orders_dequeue_unprioritised_first(dbos: type[DBOS]) -> None:
    queue = Queue(qname(), concurrency=1, priority_enabled=True)
    gauge = Gauge()
    release = threading.Event()

    @DBOS.workflow()
    def gate() -> None:
        release.wait(10)

    @DBOS.workflow()
    def task(label: str) -> str:
        gauge.enter(label)
        gauge.leave()
        return label

    gate_handle = queue.enqueue(gate)
    while gate_handle.get_status().status != "PENDING":
        time.sleep(0.005)
    handles = []
    for label, priority in (("p10-a", 10), ("p5", 5), ("none", None), ("p10-b", 10), ("p1", 1)):
        with SetEnqueueOptions(priority=priority):
            handles.append(queue.enqueue(task, label))
        time.sleep(0.002)
    release.set()
    for h in handles:
        h.get_result()
    assert gauge.order == ["none", "p1", "p5", "p10-a", "p10-b"]


def test_priority_needs_priority_enabled_and_valid_range(dbos: type[DBOS]) -> None:
    queue = Queue(qname())

    @DBOS.workflow()
    def task() -> None:
        pass

    with SetEnqueueOptions(priority=3), pytest.raises(DBOSQueueError, match="priority"):
        queue.enqueue(task)
    with pytest.raises(DBOSException, match="priority"):
        SetEnqueueOptions(priority=0)
    with pytest.raises(DBOSException, match="priority"):
        SetEnqueueOptions(priority=2_147_483_648)


def test_partitioned_queue_limits_each_partition(dbos: type[DBOS]) -> None:
    queue = Queue(qname(), concurrency=1, partition_queue=True)
    lock = threading.Lock()
    running: dict[str, int] = {}
    peaks: dict[str, int] = {}
    overlap = threading.Event()

    @DBOS.workflow()
    def task(user: str, i: int) -> int:
        with lock:
            running[user] = running.get(user, 0) + 1
            peaks[user] = max(peaks.get(user, 0), running[user])
            if sum(running.values()) > 1:
                overlap.set()
        time.sleep(0.03)
        with lock:
            running[user] -= 1
        return i

    with pytest.raises(DBOSQueueError, match="partition"):
        queue.enqueue(task, "nobody", 0)
    handles = []
    for i in range(6):
        user = "alice" if i % 2 else "bob"
        with SetEnqueueOptions(queue_partition_key=user):
            handles.append(queue.enqueue(task, user, i))
    assert sorted(h.get_result() for h in handles) == list(range(6))
    assert peaks == {"alice": 1, "bob": 1}
    # The limit is per partition, so the two users did run side by side.
    assert overlap.is_set()
    assert {h.get_status().queue_partition_key for h in handles} == {"alice", "bob"}

    plain = Queue(qname())
    with SetEnqueueOptions(queue_partition_key="x"), pytest.raises(DBOSQueueError):
        plain.enqueue(task, "x", 0)


def test_timeout_of_enqueued_workflow_starts_at_dequeue(dbos: type[DBOS]) -> None:
    queue = Queue(qname(), concurrency=1)
    release = threading.Event()

    @DBOS.workflow()
    def gate() -> None:
        release.wait(10)

    @DBOS.step()
    def tick() -> None:
        time.sleep(0.05)

    @DBOS.workflow()
    def quick() -> str:
        tick()
        return "done"

    @DBOS.workflow()
    def slow() -> str:
        for _ in range(40):
            tick()
        return "never"

    gate_handle = queue.enqueue(gate)
    with SetWorkflowTimeout(0.6):
        waiting = queue.enqueue(quick)
        too_slow = queue.enqueue(slow)
    assert waiting.get_status().workflow_deadline_epoch_ms is None
    time.sleep(0.7)  # longer than the timeout, spent waiting in the queue
    release.set()
    gate_handle.get_result()
    assert waiting.get_result() == "done"
    status = waiting.get_status()
    assert status.dequeued_at is not None
    assert status.workflow_deadline_epoch_ms == status.dequeued_at + 600
    with pytest.raises(DBOSAwaitedWorkflowCancelledError):
        too_slow.get_result()
    assert too_slow.get_status().status == "CANCELLED"


def test_cancelled_enqueued_workflow_never_runs(dbos: type[DBOS]) -> None:
    from dbos_core.runtime.global_state import get_runtime
    from dbos_core.runtime.management import cancel_workflow

    queue = Queue(qname(), concurrency=1)
    release = threading.Event()
    ran: list[int] = []

    @DBOS.workflow()
    def gate() -> None:
        release.wait(10)

    @DBOS.workflow()
    def task(i: int) -> int:
        ran.append(i)
        return i

    gate_handle = queue.enqueue(gate)
    victim = queue.enqueue(task, 1)
    survivor = queue.enqueue(task, 2)
    cancel_workflow(get_runtime(), victim.get_workflow_id())
    release.set()
    gate_handle.get_result()
    assert survivor.get_result() == 2
    assert victim.get_status().status == "CANCELLED"
    assert ran == [2]


def test_enqueue_from_workflow_is_a_durable_child(dbos: type[DBOS]) -> None:
    queue = Queue(qname(), worker_concurrency=4)

    @DBOS.step()
    def square(x: int) -> int:
        return x * x

    @DBOS.workflow()
    def parent(n: int) -> list[int]:
        handles = [queue.enqueue(square, i) for i in range(n)]
        return [h.get_result() for h in handles]

    with SetWorkflowID("parent-1"):
        assert parent(5) == [0, 1, 4, 9, 16]
    children = DBOS.list_queued_workflows(queue_name=queue.name)
    assert children == []  # all done
    from dbos_core.runtime.global_state import get_runtime

    steps = get_runtime().sysdb.steps.load("parent-1")
    child_ids = [s.child_workflow_id for s in steps.values() if s.child_workflow_id]
    assert child_ids[:5] == [f"parent-1-{i}" for i in range(1, 6)]
    # Running the parent again with its ID replays: the same children, no new enqueues.
    with SetWorkflowID("parent-1"):
        assert parent(5) == [0, 1, 4, 9, 16]


def test_list_queued_workflows_filters(dbos: type[DBOS]) -> None:
    queue = Queue(qname(), concurrency=1)
    other = Queue(qname())
    release = threading.Event()

    @DBOS.workflow()
    def gate() -> None:
        release.wait(10)

    @DBOS.workflow()
    def task(i: int) -> int:
        return i

    gate_handle = queue.enqueue(gate)
    while gate_handle.get_status().status != "PENDING":
        time.sleep(0.005)
    waiting = []
    for i in range(3):
        waiting.append(queue.enqueue(task, i))
        time.sleep(0.002)
    other_done = other.enqueue(task, 99)
    assert other_done.get_result() == 99
    try:
        listed = DBOS.list_queued_workflows(queue_name=queue.name)
        assert [w.workflow_id for w in listed] == [gate_handle.workflow_id] + [
            h.workflow_id for h in waiting
        ]
        assert [w.status for w in listed] == ["PENDING", "ENQUEUED", "ENQUEUED", "ENQUEUED"]
        enqueued = DBOS.list_queued_workflows(queue_name=queue.name, status="ENQUEUED")
        assert [w.workflow_id for w in enqueued] == [h.workflow_id for h in waiting]
        assert enqueued[0].input == {"args": (0,), "kwargs": {}}
        pending = DBOS.list_queued_workflows(status=["PENDING"], name=gate_handle.get_status().name)
        assert [w.workflow_id for w in pending] == [gate_handle.workflow_id]
        newest = DBOS.list_queued_workflows(queue_name=queue.name, sort_desc=True, limit=2)
        assert [w.workflow_id for w in newest] == [h.workflow_id for h in waiting[::-1][:2]]
        paged = DBOS.list_queued_workflows(queue_name=queue.name, limit=2, offset=1)
        assert [w.workflow_id for w in paged] == [h.workflow_id for h in waiting[:2]]
        second_created = waiting[1].get_status().created_at
        assert second_created is not None
        from dbos_core.types import ms_to_rfc3339

        later = DBOS.list_queued_workflows(
            queue_name=queue.name, start_time=ms_to_rfc3339(second_created)
        )
        assert [w.workflow_id for w in later] == [h.workflow_id for h in waiting[1:]]
        earlier = DBOS.list_queued_workflows(
            queue_name=queue.name, end_time=ms_to_rfc3339(second_created - 1)
        )
        assert waiting[1].workflow_id not in [w.workflow_id for w in earlier]
        # Finished work is not "queued" any more.
        assert DBOS.list_queued_workflows(queue_name=other.name) == []
        with pytest.raises(DBOSException, match="expected one of ENQUEUED, PENDING"):
            DBOS.list_queued_workflows(status="SUCCESS")
        with pytest.raises(DBOSException, match="RFC 3339"):
            DBOS.list_queued_workflows(start_time="yesterday")
    finally:
        release.set()
    assert [h.get_result() for h in waiting] == [0, 1, 2]


def test_bad_queue_settings_are_clear_errors() -> None:
    with pytest.raises(DBOSQueueError, match="concurrency"):
        Queue(qname(), concurrency=0)
    with pytest.raises(DBOSQueueError, match="worker_concurrency"):
        Queue(qname(), concurrency=2, worker_concurrency=3)
    with pytest.raises(DBOSQueueError, match="limiter"):
        Queue(qname(), limiter={"limit": 5})  # type: ignore[typeddict-item]
    with pytest.raises(DBOSQueueError, match="period"):
        Queue(qname(), limiter={"limit": 5, "period": -1})
    with pytest.raises(DBOSQueueError, match="name"):
        Queue("")


def test_enqueue_of_plain_function_is_refused(dbos: type[DBOS]) -> None:
    queue = Queue(qname())

    def plain() -> None:
        pass

    with pytest.raises(DBOSException, match="not a DBOS"):
        queue.enqueue(plain)


def test_queue_declared_after_launch_is_dispatched(dbos: type[DBOS]) -> None:
    @DBOS.workflow()
    def task(i: int) -> int:
        return i + 100

    late = Queue(qname(), worker_concurrency=2)
    assert late.enqueue(task, 1).get_result() == 101


def test_work_this_process_cannot_run_is_left_for_others(dbos: type[DBOS]) -> None:
    """A process claims only workflows whose functions it has (a web server that only
    enqueues must not take work it would strand)."""
    from dbos_core.runtime.effects import run_sync
    from dbos_core.runtime.global_state import get_runtime
    from dbos_core.runtime.registry import registry
    from dbos_core.runtime.workflows import QueueRequest, start_protocol

    queue = Queue(qname())

    @DBOS.workflow(name="only-elsewhere")
    def elsewhere() -> str:
        return "ran"

    reg = registry.get("only-elsewhere")
    assert reg is not None
    del registry.functions["only-elsewhere"]  # as if this process never declared it
    try:
        started = run_sync(
            start_protocol(reg, (), {}, "enqueue", QueueRequest(queue_name=queue.name))
        )

        @DBOS.workflow()
        def local(i: int) -> int:
            return i

        assert queue.enqueue(local, 5).get_result() == 5  # the dispatcher did run meanwhile
        status = get_runtime().sysdb.workflows.get_status(started.workflow_id)
        assert status is not None and status.status == "ENQUEUED"
    finally:
        registry.functions["only-elsewhere"] = reg
    # Once the function is known here, the dispatcher takes it.
    queue.enqueue(local, 6).get_result()
    assert DBOS.retrieve_workflow(started.workflow_id).get_result(timeout=10) == "ran"


def test_enqueue_method_of_configured_instance(dbos: type[DBOS]) -> None:
    from dbos_core import DBOSConfiguredInstance

    queue = Queue(qname())

    @DBOS.dbos_class()
    class Greeter(DBOSConfiguredInstance):
        def __init__(self, greeting: str) -> None:
            self.greeting = greeting
            super().__init__(config_name=greeting)

        @DBOS.workflow()
        def greet(self, name: str) -> str:
            return f"{self.greeting}, {name}"

    hello = Greeter("hello")
    assert queue.enqueue(hello.greet, "Ada").get_result() == "hello, Ada"


def test_enqueue_options_app_version_pins_the_executor_version(dbos: type[DBOS]) -> None:
    queue = Queue(qname())

    @DBOS.workflow()
    def task(i: int) -> int:
        return i

    with SetEnqueueOptions(app_version="some-other-version"):
        pinned = queue.enqueue(task, 1)
    mine = queue.enqueue(task, 2)
    assert mine.get_result() == 2  # the dispatcher ran after the pinned enqueue
    status = pinned.get_status()
    assert status.app_version == "some-other-version"
    assert status.status == "ENQUEUED"
