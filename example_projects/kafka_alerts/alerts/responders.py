"""One workflow per alert on the topic: page the on-call engineer, then open a ticket.

The consumer starts ``respond_to_alert`` once for each message: its workflow ID is
``kafka_workflow_id("alert-responders", topic, partition, offset)``, and the offset
is committed only after that workflow is stored, so a crash or a rebalance that
delivers an alert again finds its workflow instead of paging twice.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from dbos_core import DBOS, KafkaMessage

KAFKA_CONFIG = {
    "bootstrap.servers": os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092"),
    "group.id": "alert-responders",
    "auto.offset.reset": "earliest",
}
ALERTS_TOPIC = os.environ.get("ALERTS_TOPIC", "alerts-topic")

# Steps run on DBOS worker threads, outside any Flask context: they get what they
# need from the module, set by the application factory.
_responses: Path | None = None


def configure(responses: Path) -> None:
    global _responses
    _responses = responses


def record(line: str) -> None:
    """Append a side effect (stands in for calls to a pager and a ticket system)."""
    assert _responses is not None, "create_app() configures where responses go"
    with open(_responses, "a") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


@DBOS.step()
def page_on_call(alert: dict[str, Any]) -> None:
    record(f"paged on-call for {alert['id']} ({alert['severity']})")


@DBOS.step()
def open_ticket(alert: dict[str, Any]) -> str:
    ticket = f"TICKET-{alert['id']}"
    record(f"opened {ticket}")
    return ticket


@DBOS.kafka_consumer(KAFKA_CONFIG, [ALERTS_TOPIC])
@DBOS.workflow()
def respond_to_alert(msg: KafkaMessage) -> str:
    # A malformed alert fails here: its workflow is recorded as ERROR and the
    # consumer goes on with the next message.
    alert = json.loads((msg.value or b"").decode())
    if alert["severity"] == "high":
        page_on_call(alert)
    return open_ticket(alert)
