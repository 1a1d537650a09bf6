"""Prometheus metrics of one running DBOS (extra ``metrics``): "is it keeping up?"

Counters and histograms are updated where the work happens, through label children
cached per name (a step pays two dictionary lookups and two lock-protected adds).
What is cheaper to read than to track (queue depth and the age of the oldest
enqueued workflow, workflows executing here) is read when Prometheus scrapes:
one grouped query per scrape.

Each runtime has its own registry, served at ``/metrics`` by the admin server and
by the adapters' metrics views; nothing is registered in prometheus-client's
global registry, so an application's own metrics and several DBOS instances in a
test process never collide.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..error import DBOSConfigurationError

try:
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        CollectorRegistry,
        Counter,
        Gauge,
        Histogram,
        generate_latest,
    )
    from prometheus_client.core import GaugeMetricFamily
    from prometheus_client.registry import Collector
except ImportError as exc:  # the metrics extra is optional
    raise DBOSConfigurationError(
        "enable_metrics is True but prometheus-client is not installed: install the "
        f"'metrics' extra, for example pip install 'dbos-suite[metrics]' ({exc})"
    ) from exc

from . import signals

if TYPE_CHECKING:
    from ..runtime.runtime import Runtime

_WORKFLOW_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    300,
    900,
    3600,
)
_STEP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60)
_DISPATCH_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    60,
    300,
)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.workflows_started = Counter(
            "dbos_workflows_started",
            "Workflow executions begun in this process (first runs, dequeues, recoveries)",
            ["workflow"],
            registry=r,
        )
        self.workflows_completed = Counter(
            "dbos_workflows_completed",
            "Workflow executions that ended here, by final status",
            ["workflow", "status"],
            registry=r,
        )
        self.workflow_duration = Histogram(
            "dbos_workflow_duration_seconds",
            "Duration of workflow executions that ended here, by final status",
            ["workflow", "status"],
            buckets=_WORKFLOW_BUCKETS,
            registry=r,
        )
        self.step_duration = Histogram(
            "dbos_step_duration_seconds",
            "Duration of steps and transactions (all attempts), by outcome",
            ["step", "status"],
            buckets=_STEP_BUCKETS,
            registry=r,
        )
        self.step_retries = Counter(
            "dbos_step_retries", "Failed step attempts that were retried", ["step"], registry=r
        )
        self.recoveries = Counter(
            "dbos_workflow_recoveries",
            "PENDING workflows of dead processes run again here",
            ["workflow"],
            registry=r,
        )
        self.dispatch_latency = Histogram(
            "dbos_queue_dispatch_latency_seconds",
            "From a queued workflow's creation to its start here",
            ["queue"],
            buckets=_DISPATCH_BUCKETS,
            registry=r,
        )
        self.waiting_gauge = Gauge(
            "dbos_workflows_waiting",
            "Workflows executing here that are parked in a durable wait "
            "(sleep, recv, get_event, a child's result)",
            registry=r,
        )
        self.database_retries = Counter(
            "dbos_database_retries",
            "Database calls that failed transiently and were retried",
            ["database"],
            registry=r,
        )
        self.database_outages = Counter(
            "dbos_database_outages",
            "Times a database became unreachable",
            ["database"],
            registry=r,
        )
        self.database_down = Gauge(
            "dbos_database_unavailable",
            "1 while a database is unreachable, else 0",
            ["database"],
            registry=r,
        )
        self.database_down.labels("system").set(0)
        self._children: dict[tuple[Any, ...], Any] = {}
        self._lock = threading.Lock()
        self._scrape: _ScrapeCollector | None = None

    # -- lifecycle -----------------------------------------------------------------

    def start(self, rt: Runtime) -> None:
        self._scrape = _ScrapeCollector(rt)
        self.registry.register(self._scrape)
        signals.subscribe(self)

    def stop(self) -> None:
        signals.unsubscribe(self)
        if self._scrape is not None:
            self.registry.unregister(self._scrape)
            self._scrape = None

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    # -- recording -----------------------------------------------------------------

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            with self._lock:
                child = self._children.setdefault(key, metric.labels(*labels))
        return child

    def workflow_started(self, name: str) -> None:
        self._child(self.workflows_started, name).inc()

    def workflow_finished(self, name: str, status: str, seconds: float) -> None:
        self._child(self.workflows_completed, name, status).inc()
        self._child(self.workflow_duration, name, status).observe(seconds)

    def step_finished(self, name: str, failed: bool, seconds: float) -> None:
        self._child(self.step_duration, name, "ERROR" if failed else "SUCCESS").observe(seconds)

    def step_retry(self, name: str) -> None:
        self._child(self.step_retries, name).inc()

    def recovered(self, name: str) -> None:
        self._child(self.recoveries, name).inc()

    def dequeued(self, queue_name: str, enqueued_at_ms: int) -> None:
        latency = max(0.0, time.time() - enqueued_at_ms / 1000)
        self._child(self.dispatch_latency, queue_name).observe(latency)

    def waiting(self, delta: int) -> None:
        self.waiting_gauge.inc(delta)

    # signals.DatabaseObserver
    def database_retry(self, database: str) -> None:
        self._child(self.database_retries, database).inc()

    def database_outage(self, database: str, started: bool) -> None:
        if started:
            self._child(self.database_outages, database).inc()
        self._child(self.database_down, database).set(1 if started else 0)


class _ScrapeCollector(Collector):
    """Read at scrape time: queue backlog from the database, executions from memory."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def describe(self) -> Iterator[Any]:
        # Declared without samples so that registering it does not query the database.
        yield GaugeMetricFamily("dbos_workflows_active", "")
        yield GaugeMetricFamily("dbos_queue_depth", "", labels=["queue"])
        yield GaugeMetricFamily("dbos_queue_oldest_age_seconds", "", labels=["queue"])

    def collect(self) -> Iterator[Any]:
        from ..runtime.dispatcher import queue_registry
        from ..storage.management import queue_backlog

        active = GaugeMetricFamily(
            "dbos_workflows_active", "Workflow executions running in this process"
        )
        active.add_metric([], len(self.rt.active))
        yield active
        depth = GaugeMetricFamily(
            "dbos_queue_depth", "Workflows waiting ENQUEUED, per queue", labels=["queue"]
        )
        age = GaugeMetricFamily(
            "dbos_queue_oldest_age_seconds",
            "Age of the oldest workflow waiting ENQUEUED, per queue (0 when none waits)",
            labels=["queue"],
        )
        try:
            backlog = queue_backlog(self.rt.sysdb)
        except Exception as exc:
            # The scrape still answers (the outage counters matter most then).
            self.rt.logger.debug("metrics: cannot read queue backlog: %s", exc)
            backlog = None
        if backlog is not None:
            now = time.time()
            seen = set()
            for queue, count, oldest_ms in backlog:
                seen.add(queue)
                depth.add_metric([queue], count)
                age.add_metric([queue], max(0.0, now - oldest_ms / 1000))
            # Queues declared here report 0 rather than vanishing when they drain.
            for limits in queue_registry.all():
                if limits.name not in seen:
                    depth.add_metric([limits.name], 0)
                    age.add_metric([limits.name], 0)
        yield depth
        yield age
