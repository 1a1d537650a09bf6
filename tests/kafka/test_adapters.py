"""Kafka consumers under a web adapter: they start and stop with the FastAPI lifespan.

(The Flask worker command is exercised for real by test_example_alerts.py.)
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from dbos_core import DBOS, DBOSConfig, KafkaMessage, integration, kafka_workflow_id
from dbos_core.kafka import unregister_kafka_consumers
from dbos_fastapi import DBOSMiddleware
from tests.core.crashutil import wait_for
from tests.kafka.mock_cluster import MockKafka
from tests.kafka.test_consumer import all_committed


@pytest.fixture()
def configured(kafka: MockKafka, dbos_config: DBOSConfig) -> Iterator[DBOSConfig]:
    """DBOS configured but not launched, as an app module leaves it at import."""
    DBOS.destroy()
    DBOS(config=dbos_config)
    yield dbos_config
    DBOS.destroy()


def test_consumer_runs_for_the_lifespan_of_a_fastapi_app(
    configured: DBOSConfig, kafka: MockKafka, consumer_config: dict[str, Any], topic: str
) -> None:
    handled: list[int] = []

    @DBOS.kafka_consumer(consumer_config, [topic])
    @DBOS.workflow()
    async def handle_in_app(msg: KafkaMessage) -> int:
        handled.append(msg.offset)
        return msg.offset

    app = FastAPI()

    @app.get("/handled/{partition}/{offset}")
    async def handled_message(partition: int, offset: int) -> Any:
        workflow_id = kafka_workflow_id(consumer_config["group.id"], topic, partition, offset)
        handle = await DBOS.retrieve_workflow_async(workflow_id)
        return {"result": await handle.get_result()}

    app.add_middleware(DBOSMiddleware)
    try:
        kafka.produce(topic, [b"a", b"b"], partition=0)
        assert not [t for t in threading.enumerate() if t.name.startswith("dbos-kafka-")]
        with TestClient(app) as client:
            wait_for(lambda: len(handled) == 2, what="two workflows under the app")
            assert client.get("/handled/0/1").json() == {"result": 1}
            consumers = [t for t in threading.enumerate() if t.name.startswith("dbos-kafka-")]
            assert len(consumers) == 1
        # The app's shutdown destroyed DBOS: the consumer committed and closed.
        assert not integration.is_launched()
        assert not consumers[0].is_alive()
        assert all_committed(kafka, consumer_config["group.id"], topic)()
    finally:
        unregister_kafka_consumers(handle_in_app.__qualname__)
