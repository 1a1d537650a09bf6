"""Fixtures for the Kafka consumer tests: a mock cluster, a consumer config, cleanup."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dbos_core import DBOS
from dbos_core.kafka import unregister_kafka_consumers
from tests.kafka.mock_cluster import MockKafka, mock_kafka


@pytest.fixture()
def kafka() -> Iterator[MockKafka]:
    with mock_kafka() as cluster:
        yield cluster


def client_settings(bootstrap: str, group: str) -> dict[str, Any]:
    """A consumer configuration as users write it, tuned so that tests run quickly."""
    return {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        # A killed member leaves the group after this, not after the 45 s default.
        "session.timeout.ms": 3000,
        "heartbeat.interval.ms": 300,
    }


@pytest.fixture()
def consumer_config(kafka: MockKafka) -> dict[str, Any]:
    return client_settings(kafka.bootstrap, f"group-{uuid.uuid4().hex[:8]}")


@pytest.fixture()
def topic(kafka: MockKafka) -> str:
    name = f"topic-{uuid.uuid4().hex[:8]}"
    kafka.create_topic(name, 3)
    return name


@pytest.fixture()
def consumers(kafka: MockKafka, dbos: type[DBOS]) -> Iterator[list[Callable[..., Any]]]:
    """Workflows a test declares as consumers; forgotten at the end of the test.

    Depends on ``kafka`` before ``dbos``: DBOS is destroyed (its consumers leave their
    groups) before the cluster goes away.
    """
    declared: list[Callable[..., Any]] = []
    yield declared
    DBOS.destroy()
    for func in declared:
        unregister_kafka_consumers(func.__dbos_registration__.name)  # type: ignore[attr-defined]
