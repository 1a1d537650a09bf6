"""The kafka_alerts example, run as its README says: ``flask --app alerts dbos worker``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from dbos_core import DBOSClient, kafka_workflow_id
from tests.core.crashutil import ROOT, lines, wait_for
from tests.kafka.mock_cluster import MockKafka

EXAMPLE = ROOT / "example_projects" / "kafka_alerts"


def flask_alerts(
    kafka: MockKafka, topic: str, db_url: str, data_dir: Path, *args: str
) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),  # dbos_core from this checkout; alerts from the cwd
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
        "ALERTS_TOPIC": topic,
        "ALERTS_DATA_DIR": str(data_dir),
        "FLASK_DBOS_SYSTEM_DATABASE_URL": db_url,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "alerts", *args],
        cwd=EXAMPLE,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_worker_answers_each_alert_once(kafka: MockKafka, db_url: str, tmp_path: Path) -> None:
    topic = f"alerts-{uuid.uuid4().hex[:8]}"
    kafka.create_topic(topic, 3)
    alerts = [
        {"id": "disk-full", "severity": "high"},
        {"id": "slow-query", "severity": "low"},
        {"id": "cert-expiry", "severity": "high"},
    ]
    for partition, alert in enumerate(alerts):
        kafka.produce(topic, [json.dumps(alert).encode()], partition=partition)
    kafka.produce(topic, [b"{not json"], partition=1)

    worker = flask_alerts(kafka, topic, db_url, tmp_path, "dbos", "worker")
    try:
        responses = tmp_path / "responses.log"
        wait_for(lambda: len(lines(responses)) == 5, timeout=60, what="five responses")
        group = "alert-responders"

        def all_finished() -> bool:
            with DBOSClient(db_url) as client:
                found = client.list_workflows(name="respond_to_alert")
            return len(found) == 4 and all(w.status in ("SUCCESS", "ERROR") for w in found)

        # Stopped before its end, a workflow would stay PENDING for the next launch.
        wait_for(all_finished, timeout=30, what="all four workflows to finish")
        wait_for(
            lambda: kafka.committed(group, topic, 3) == [1, 2, 1],
            timeout=30,
            what="offsets committed",
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    assert "DBOS worker running" in err and "DBOS worker stopped" in err
    assert sorted(lines(responses)) == sorted(
        [
            "paged on-call for disk-full (high)",
            "opened TICKET-disk-full",
            "opened TICKET-slow-query",
            "paged on-call for cert-expiry (high)",
            "opened TICKET-cert-expiry",
        ]
    )
    with DBOSClient(db_url) as client:
        done = client.retrieve_workflow(kafka_workflow_id(group, topic, 0, 0))
        assert done.get_result() == "TICKET-disk-full"
        malformed = client.retrieve_workflow(kafka_workflow_id(group, topic, 1, 1)).get_status()
        assert malformed.status == "ERROR" and malformed.name == "respond_to_alert"
        assert len(client.list_workflows(name="respond_to_alert")) == 4

    # The README's way to look one up: the workflow ID of partition 0, offset 0.
    get = flask_alerts(
        kafka,
        topic,
        db_url,
        tmp_path,
        "dbos",
        "workflow",
        "get",
        kafka_workflow_id(group, topic, 0, 0),
    )
    out, err = get.communicate(timeout=60)
    assert get.returncode == 0, err
    assert json.loads(out)["status"] == "SUCCESS"
