"""OpenTelemetry traces and logs, checked at a real OTLP/HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace

from dbos_core import DBOS, DBOSConfig, Queue, SetWorkflowID
from dbos_core.error import DBOSConfigurationError
from tests.core.crashutil import ROOT, kill9, lines, spawn, wait_for
from tests.otlp_receiver import OTLPReceiver, otlp_receiver

ATTRIBUTES = {"deployment.environment": "test", "team": "payments"}


@pytest.fixture()
def receiver() -> Iterator[OTLPReceiver]:
    with otlp_receiver() as rec:
        yield rec


def launch_traced(config: DBOSConfig, receiver: OTLPReceiver, **extra: Any) -> None:
    DBOS.destroy()
    DBOS(
        config={
            **config,
            "enable_otlp": True,
            "otlp_traces_endpoints": [receiver.traces_endpoint],
            "otlp_logs_endpoints": [receiver.logs_endpoint],
            "otlp_attributes": ATTRIBUTES,
            **extra,
        }
    )
    DBOS.launch()


def has_attributes(item: Any) -> bool:
    return all(item.attributes.get(k) == v for k, v in ATTRIBUTES.items())


def test_two_steps_and_a_retry_make_the_expected_span_tree(
    dbos_config: DBOSConfig, receiver: OTLPReceiver
) -> None:
    calls: list[int] = []

    @DBOS.step(name="otel_reserve_item")
    def reserve(item: str) -> str:
        return f"reserved {item}"

    @DBOS.step(name="otel_charge", retries_allowed=True, interval_seconds=0, max_attempts=3)
    def charge(amount: int) -> str:
        calls.append(amount)
        if len(calls) == 1:
            raise ConnectionError("card network hiccup")
        return f"charged {amount}"

    @DBOS.workflow(name="otel_checkout_flow")
    def checkout_flow(item: str, amount: int) -> str:
        return f"{reserve(item)}, {charge(amount)}"

    launch_traced(dbos_config, receiver)
    with SetWorkflowID("order-1"):
        assert checkout_flow("book", 12) == "reserved book, charged 12"
    DBOS.destroy()  # flushes the batch processors
    receiver.wait_for(lambda r: len(r.spans_named("otel_charge")) == 1)

    workflow = receiver.one_span("otel_checkout_flow", **{"dbos.workflow.id": "order-1"})
    assert workflow.attributes["dbos.workflow.name"] == "otel_checkout_flow"
    assert workflow.attributes["dbos.workflow.status"] == "SUCCESS"
    assert workflow.attributes["dbos.executor.id"] == "local"
    assert workflow.attributes["dbos.application.version"] == "test-version"
    assert workflow.attributes["dbos.workflow.recovery_attempt"] == 0
    assert has_attributes(workflow)

    # The workflow had no caller span: a root span made at its creation names the trace.
    root = receiver.one_span("call otel_checkout_flow")
    assert root.parent_span_id == "" and workflow.parent_span_id == root.span_id

    steps = sorted(
        receiver.children_of(workflow), key=lambda s: s.attributes["dbos.step.function_id"]
    )
    assert [s.name for s in steps] == ["otel_reserve_item", "otel_charge"]
    reserve_span, charge_span = steps
    assert {s.trace_id for s in (root, workflow, reserve_span, charge_span)} == {workflow.trace_id}
    assert reserve_span.attributes["dbos.step.function_id"] == 1
    assert reserve_span.attributes["dbos.step.attempt"] == 1
    assert reserve_span.attributes["dbos.step.retries"] == 0
    assert charge_span.attributes["dbos.step.function_id"] == 2
    assert charge_span.attributes["dbos.step.attempt"] == 2
    assert charge_span.attributes["dbos.step.retries"] == 1
    assert charge_span.attributes["dbos.step.status"] == "SUCCESS"
    retries = [attrs for name, attrs in charge_span.events if name == "dbos.step.retry"]
    assert retries == [
        {
            "dbos.step.attempt": 1,
            "exception.type": "ConnectionError",
            "exception.message": "card network hiccup",
        }
    ]
    assert all(has_attributes(s) for s in (root, reserve_span, charge_span))
    assert workflow.resource["service.name"]


def test_logs_carry_the_trace_and_span_of_their_workflow_and_step(
    dbos_config: DBOSConfig, receiver: OTLPReceiver
) -> None:
    @DBOS.step(name="otel_noisy_step")
    def noisy_step() -> None:
        DBOS.logger.info("inside the step")

    @DBOS.workflow(name="otel_noisy_workflow")
    def noisy_workflow() -> None:
        DBOS.logger.warning("inside the workflow")
        noisy_step()

    launch_traced(dbos_config, receiver)
    with SetWorkflowID("logged-1"):
        noisy_workflow()
    DBOS.destroy()
    receiver.wait_for(
        lambda r: {"inside the step", "inside the workflow"} <= {x.body for x in r.logs}
    )
    receiver.wait_for(lambda r: len(r.spans_named("otel_noisy_step")) == 1)

    workflow = receiver.one_span("otel_noisy_workflow")
    step = receiver.one_span("otel_noisy_step")
    by_body = {record.body: record for record in receiver.logs}
    in_workflow, in_step = by_body["inside the workflow"], by_body["inside the step"]
    assert (in_workflow.trace_id, in_workflow.span_id) == (workflow.trace_id, workflow.span_id)
    assert (in_step.trace_id, in_step.span_id) == (step.trace_id, step.span_id)
    assert in_workflow.severity_text == "WARN" and in_step.severity_text == "INFO"
    assert in_step.attributes["dbos.workflow.id"] == "logged-1"
    assert in_step.attributes["dbos.step.function_id"] == 1
    for record in (in_workflow, in_step):
        assert has_attributes(record)
        assert record.resource["service.name"] == "test-app"
        assert all(record.resource.get(k) == v for k, v in ATTRIBUTES.items())


def test_operations_are_events_and_an_enqueued_workflow_joins_its_callers_trace(
    dbos_config: DBOSConfig, receiver: OTLPReceiver
) -> None:
    queue = Queue("traced-queue")

    @DBOS.workflow(name="otel_receiver_workflow")
    def receiver_workflow() -> Any:
        DBOS.set_event("ready", True)
        return DBOS.recv("greeting", timeout_seconds=30)

    @DBOS.workflow(name="otel_sender_workflow")
    def sender_workflow(target: str) -> Any:
        DBOS.sleep(0)
        assert DBOS.get_event(target, "ready", timeout_seconds=30) is True
        DBOS.send(target, "hello", topic="greeting")
        return "sent"

    launch_traced(dbos_config, receiver)
    target = DBOS.start_workflow(receiver_workflow)
    tracer = trace.get_tracer("tests")
    with tracer.start_as_current_span("incoming request") as request_span:
        handle = queue.enqueue(sender_workflow, target.workflow_id)
        request_ids = request_span.get_span_context()
    assert handle.get_result() == "sent"
    assert target.get_result() == "hello"
    DBOS.destroy()
    receiver.wait_for(lambda r: len(r.spans_named("incoming request")) == 1)
    receiver.wait_for(lambda r: len(r.spans_named("otel_sender_workflow")) == 1)

    request = receiver.one_span("incoming request")
    assert request.span_id == f"{request_ids.span_id:016x}"
    enqueued = [attrs for name, attrs in request.events if name == "dbos.enqueue"]
    assert enqueued == [
        {
            "dbos.workflow.id": handle.workflow_id,
            "dbos.workflow.name": "otel_sender_workflow",
            "dbos.queue.name": "traced-queue",
        }
    ]
    sender = receiver.one_span("otel_sender_workflow")
    # Started later by the queue dispatcher, it is still a child of the request's span.
    assert (sender.trace_id, sender.parent_span_id) == (request.trace_id, request.span_id)
    assert sender.attributes["dbos.queue.name"] == "traced-queue"
    events = {name: attrs for name, attrs in sender.events}
    assert events["dbos.sleep"] == {"dbos.sleep.seconds": 0.0}
    assert events["dbos.get_event"]["dbos.event.key"] == "ready"
    assert events["dbos.send"] == {
        "dbos.destination_id": target.workflow_id,
        "dbos.topic": "greeting",
    }
    target_span = receiver.one_span("otel_receiver_workflow")
    target_events = {name: attrs for name, attrs in target_span.events}
    assert target_events["dbos.set_event"] == {"dbos.event.key": "ready"}
    assert target_events["dbos.recv"] == {"dbos.topic": "greeting", "dbos.timeout_seconds": 30.0}


def test_failures_children_and_cancellation_are_reported(
    dbos_config: DBOSConfig, receiver: OTLPReceiver
) -> None:
    @DBOS.step(name="otel_failing_step")
    def failing_step() -> None:
        raise ValueError("no stock")

    @DBOS.workflow(name="otel_child_workflow")
    def child_workflow() -> str:
        return "child done"

    @DBOS.workflow(name="otel_parent_workflow")
    def parent_workflow() -> str:
        result = child_workflow()
        failing_step()
        return result

    launch_traced(dbos_config, receiver)
    with SetWorkflowID("parent-1"), pytest.raises(ValueError, match="no stock"):
        parent_workflow()
    DBOS.destroy()
    receiver.wait_for(lambda r: len(r.spans_named("otel_parent_workflow")) == 1)

    parent = receiver.one_span("otel_parent_workflow")
    assert parent.attributes["dbos.workflow.status"] == "ERROR"
    assert parent.status_code == 2  # STATUS_CODE_ERROR
    assert ("exception", {"exception.type": "ValueError"}) in [
        (name, {"exception.type": attrs.get("exception.type")}) for name, attrs in parent.events
    ]
    step = receiver.one_span("otel_failing_step")
    assert step.parent_span_id == parent.span_id
    assert step.attributes["dbos.step.status"] == "ERROR" and step.status_code == 2
    child = receiver.one_span("otel_child_workflow")
    assert (child.trace_id, child.parent_span_id) == (parent.trace_id, parent.span_id)
    assert child.attributes["dbos.workflow.id"] == "parent-1-1"


def test_a_hung_collector_neither_blocks_nor_fails_steps(
    dbos_config: DBOSConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Export every 50 ms, and let a hung request wait a minute before it times out.
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    monkeypatch.setenv("OTEL_BLRP_SCHEDULE_DELAY", "50")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "60")
    gate = threading.Event()

    @DBOS.step(name="otel_first_step")
    def first_step() -> int:
        DBOS.logger.info("first step")
        return 1

    @DBOS.step(name="otel_wait_for_gate")
    def wait_for_gate() -> int:
        assert gate.wait(30)
        return 1

    @DBOS.step(name="otel_tiny_step")
    def tiny_step(i: int) -> int:
        DBOS.logger.info("tiny step %d", i)
        return i

    @DBOS.workflow(name="otel_many_steps")
    def many_steps(n: int) -> int:
        return first_step() + wait_for_gate() + sum(tiny_step(i) for i in range(n))

    with otlp_receiver(hang=True) as hung:
        launch_traced(dbos_config, hung)
        handle = DBOS.start_workflow(many_steps, 100)
        # The exporter has sent the first batch; the collector holds it unanswered.
        hung.wait_for(lambda r: r.requests >= 1)
        gate.set()
        assert handle.get_result(timeout=60) == 2 + sum(range(100))
        assert DBOS.retrieve_workflow(handle.workflow_id).get_status().status == "SUCCESS"
        # Every step ran while the collector had not answered a single request.
        assert hung.spans == [] and hung.logs == []
        DBOS.destroy()  # bounded, though the exporter is stuck


def test_a_collector_that_is_down_does_not_fail_workflows(dbos_config: DBOSConfig) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    endpoint = f"http://127.0.0.1:{closed_port}"

    @DBOS.step(name="otel_step_while_down")
    def step_while_down(i: int) -> int:
        DBOS.logger.info("step %d", i)
        return i * 2

    @DBOS.workflow(name="otel_workflow_while_down")
    def workflow_while_down(n: int) -> int:
        return sum(step_while_down(i) for i in range(n))

    DBOS.destroy()
    DBOS(
        config={
            **dbos_config,
            "enable_otlp": True,
            "otlp_traces_endpoints": [f"{endpoint}/v1/traces"],
            "otlp_logs_endpoints": [f"{endpoint}/v1/logs"],
        }
    )
    DBOS.launch()
    try:
        assert workflow_while_down(20) == 2 * sum(range(20))
        handle = DBOS.start_workflow(workflow_while_down, 5)
        assert handle.get_result(timeout=60) == 20
    finally:
        DBOS.destroy()


CRASH_APP = Path(__file__).parent / "proc" / "otel_app.py"


def test_a_recovered_workflow_continues_its_trace_in_the_new_process(
    db_url: str, tmp_path: Path, receiver: OTLPReceiver
) -> None:
    env = {"OTEL_BSP_SCHEDULE_DELAY": "50"}
    args = (db_url, str(tmp_path), "traced-crash-1", receiver.traces_endpoint)
    first = spawn(CRASH_APP, *args, env=env)
    try:
        wait_for(lambda: len(lines(tmp_path / "step2")) == 1, what="step 2 to start")
        receiver.wait_for(lambda r: len(r.spans_named("traced_step_one")) == 1)
    finally:
        kill9(first)
    (tmp_path / "release").touch()
    second = spawn(CRASH_APP, *args, env={**env, "CRASH_APP_MODE": "recover"})
    out, _ = second.communicate(timeout=60)
    assert second.returncode == 0, out.decode()
    assert lines(tmp_path / "result") == ["50"]
    receiver.wait_for(lambda r: len(r.spans_named("traced_step_two")) == 1)
    receiver.wait_for(lambda r: len(r.spans_named("traced_workflow")) == 1)

    step_one = receiver.one_span("traced_step_one")  # ran once, in the first process
    root = receiver.one_span("start traced_workflow")
    recovered = receiver.one_span("traced_workflow")  # the first execution died unended
    step_two = receiver.one_span("traced_step_two")
    assert recovered.attributes["dbos.workflow.recovery_attempt"] == 1
    assert recovered.attributes["dbos.workflow.id"] == "traced-crash-1"
    trace_id = root.trace_id
    assert {step_one.trace_id, recovered.trace_id, step_two.trace_id} == {trace_id}
    assert recovered.parent_span_id == root.span_id
    assert step_two.parent_span_id == recovered.span_id
    instances = {span.resource["service.instance.id"] for span in (step_one, step_two)}
    assert len(instances) == 2  # two processes, one trace


def test_otlp_keys_are_checked(dbos_config: DBOSConfig) -> None:
    with pytest.raises(DBOSConfigurationError, match="enable_otlp is not True"):
        DBOS(config={**dbos_config, "otlp_traces_endpoints": ["http://127.0.0.1:4318/v1/traces"]})
    with pytest.raises(DBOSConfigurationError, match="enable_otlp is not True"):
        DBOS(config={**dbos_config, "otlp_attributes": {"team": "a"}})
    with pytest.raises(DBOSConfigurationError, match="not an http"):
        DBOS(config={**dbos_config, "enable_otlp": True, "otlp_logs_endpoints": ["collector:4318"]})
    with pytest.raises(DBOSConfigurationError, match="list of URLs"):
        DBOS(
            config={
                **dbos_config,
                "enable_otlp": True,
                "otlp_traces_endpoints": "http://127.0.0.1:4318/v1/traces",
            }
        )
    with pytest.raises(DBOSConfigurationError, match="dict of str to str"):
        DBOS(config={**dbos_config, "enable_otlp": True, "otlp_attributes": {"n": 1}})
    with pytest.raises(DBOSConfigurationError, match="enable_otlp.*must be a bool"):
        DBOS(config={**dbos_config, "enable_otlp": "yes"})


def _run(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )


MISSING_EXTRA = """
import sys
sys.modules[{module!r}] = None  # as if the extra were not installed
from dbos_core import DBOS
from dbos_core.error import DBOSConfigurationError
try:
    DBOS(config={{"name": "no-extra", "system_database_url": "sqlite:///x.sqlite", {key!r}: True}})
except DBOSConfigurationError as exc:
    print(exc)
"""


@pytest.mark.parametrize(
    ("module", "key", "extra"),
    [("opentelemetry", "enable_otlp", "otel"), ("prometheus_client", "enable_metrics", "metrics")],
)
def test_a_missing_extra_fails_at_construction_naming_it(
    module: str, key: str, extra: str, tmp_path: Path
) -> None:
    out = _run(MISSING_EXTRA.format(module=module, key=key), tmp_path)
    assert out.returncode == 0, out.stderr
    assert f"'{extra}' extra" in out.stdout and key in out.stdout


APP_PROVIDER = """
import json, sys
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter = InMemorySpanExporter()
provider = TracerProvider(resource=Resource.create({"service.name": "the-apps-own"}))
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)

from dbos_core import DBOS

@DBOS.step()
def app_step():
    return 1

@DBOS.workflow()
def app_workflow():
    return app_step()

DBOS(config={"name": "reuse", "system_database_url": sys.argv[1], "enable_otlp": True})
DBOS.launch()
with trace.get_tracer("app").start_as_current_span("app request"):
    app_workflow()
DBOS.destroy()
assert trace.get_tracer_provider() is provider
print(json.dumps([
    [s.name, s.resource.attributes["service.name"], s.parent.span_id if s.parent else None,
     s.context.span_id]
    for s in exporter.get_finished_spans()
]))
"""


def test_an_applications_tracer_provider_is_used_not_replaced(db_url: str, tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(APP_PROVIDER)
    out = subprocess.run(
        [sys.executable, str(script), db_url],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    import json

    spans = {
        name: (service, parent, span_id)
        for name, service, parent, span_id in json.loads(out.stdout)
    }
    assert set(spans) == {"app request", "app_workflow", "app_step"}
    assert {service for service, _, _ in spans.values()} == {"the-apps-own"}
    assert spans["app_workflow"][1] == spans["app request"][2]
    assert spans["app_step"][1] == spans["app_workflow"][2]


async def test_async_workflow_with_concurrent_steps_nests_each_step_under_it(
    dbos_config: DBOSConfig, receiver: OTLPReceiver
) -> None:
    import asyncio

    @DBOS.step(name="otel_async_fetch")
    async def fetch(i: int) -> int:
        await asyncio.sleep(0.01)
        DBOS.logger.info("fetched %d", i)
        return i

    @DBOS.workflow(name="otel_async_gather")
    async def gather_workflow() -> int:
        values = await asyncio.gather(fetch(1), fetch(2), fetch(3))
        return sum(values)

    launch_traced(dbos_config, receiver)
    with SetWorkflowID("async-1"):
        assert await gather_workflow() == 6
    DBOS.destroy()
    receiver.wait_for(lambda r: len(r.spans_named("otel_async_fetch")) == 3)
    receiver.wait_for(lambda r: sum(x.body.startswith("fetched") for x in r.logs) == 3)

    workflow = receiver.one_span("otel_async_gather")
    fetches = receiver.spans_named("otel_async_fetch")
    assert {s.parent_span_id for s in fetches} == {workflow.span_id}
    assert sorted(s.attributes["dbos.step.function_id"] for s in fetches) == [1, 2, 3]
    # Each log line carries the span of the step (task) that wrote it.
    step_spans = {s.span_id for s in fetches}
    assert {x.span_id for x in receiver.logs if x.body.startswith("fetched")} == step_spans


def test_the_migration_adds_the_trace_column_to_an_older_database(db_url: str) -> None:
    import sqlalchemy as sa

    from dbos_core.storage.database import Database
    from dbos_core.storage.migrations import LATEST_VERSION, MIGRATIONS, current_version, migrate
    from dbos_core.storage.schema import migrations_table

    ours = next(i + 1 for i, m in enumerate(MIGRATIONS) if m.__name__.endswith("trace_context"))

    db = Database(db_url)
    try:
        db.wait_until_reachable(10)
        migrate(db)
        # Make it a database from before that migration: no column, older version recorded.
        table = "workflow_status" if db.is_sqlite else '"dbos".workflow_status'
        with db.transaction() as conn:
            conn.exec_driver_sql(f"ALTER TABLE {table} DROP COLUMN trace_context")
            conn.execute(migrations_table.delete().where(migrations_table.c.version >= ours))
        assert current_version(db) == ours - 1
        assert migrate(db) == LATEST_VERSION - ours + 1
        assert current_version(db) == LATEST_VERSION
        schema = None if db.is_sqlite else "dbos"
        with db.connect() as conn:
            columns = {c["name"] for c in sa.inspect(conn).get_columns("workflow_status", schema)}
        assert "trace_context" in columns
    finally:
        db.dispose()
