"""Kafka consumers that start one workflow per message, exactly once.

``@DBOS.kafka_consumer(config, topics)`` on a workflow declares a consumer (see
``spec``); the runtime service (``service``) runs one loop per consumer (``loop``),
which starts each message's workflow under an ID derived from the consumer group,
topic, partition and offset (``message.kafka_workflow_id``) before committing the
offset. Nothing here imports confluent-kafka until a consumer is declared.
"""

from __future__ import annotations

from .message import KafkaMessage, kafka_workflow_id
from .service import REJECTED_MESSAGE_WORKFLOW, DBOSKafkaMessageRejectedError
from .spec import DBOSKafkaError, in_order_queue_name, unregister_kafka_consumers

__all__ = [
    "REJECTED_MESSAGE_WORKFLOW",
    "DBOSKafkaError",
    "DBOSKafkaMessageRejectedError",
    "KafkaMessage",
    "in_order_queue_name",
    "kafka_workflow_id",
    "unregister_kafka_consumers",
]
