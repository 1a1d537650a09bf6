"""A consumer process for the crash and rebalance tests (``python -m tests.kafka.consumer_app``).

Each message's workflow records the number in it in the ``kafka_effects`` table of
the application database, in a step that is a transaction (the row and the step's
checkpoint commit together), so the table counts each workflow's one effect.
Settings come from the environment; SIGTERM stops DBOS cleanly and exits 0.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

from dbos_core import DBOS, KafkaMessage
from tests.kafka.conftest import client_settings
from tests.kafka.effects import effects

CONFIG = client_settings(os.environ["KAFKA_BOOTSTRAP"], os.environ["KAFKA_GROUP"])
TOPIC = os.environ["KAFKA_TOPIC"]
IN_ORDER = os.environ.get("KAFKA_IN_ORDER") == "1"


@DBOS.transaction()
def record_effect(msg_topic: str, partition: int, offset: int, number: int) -> None:
    DBOS.sql_session.execute(
        effects.insert().values(
            topic=msg_topic,
            partition=partition,
            offset=offset,
            number=number,
            workflow_id=DBOS.workflow_id,
            pid=os.getpid(),
        )
    )


@DBOS.kafka_consumer(CONFIG, [TOPIC], in_order=IN_ORDER)
@DBOS.workflow()
def consume_number(msg: KafkaMessage) -> int:
    number = int((msg.value or b"").decode())
    record_effect(msg.topic, msg.partition, msg.offset, number)
    return number


def main() -> None:
    app_url = os.environ["APP_DATABASE_URL"]  # the test created the effects table there
    stop = threading.Event()

    def request_stop(_signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    DBOS(
        config={
            "name": "kafka-consumer-app",
            "system_database_url": os.environ["DBOS_DATABASE_URL"],
            "application_database_url": app_url,
            "application_version": "kafka-consumer-app-v1",
            "notification_poll_interval": 0.05,
        }
    )
    DBOS.launch()
    print("ready", flush=True)
    stop.wait()
    DBOS.destroy()
    print("stopped", flush=True)


if __name__ == "__main__":
    main()
