"""The README's Kafka section runs as written, against the mock cluster."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from dbos_core import DBOSClient, kafka_workflow_id
from dbos_core.error import DBOSInitializationError
from tests.core.crashutil import ROOT, wait_for
from tests.kafka.mock_cluster import MockKafka
from tests.readme import readme_section


def launched(db_url: str) -> bool:
    """Whether the program has created and migrated its system database."""
    try:
        DBOSClient(db_url).close()
    except DBOSInitializationError:
        return False
    return True


def test_kafka_example_program(kafka: MockKafka, db_url: str, tmp_path: Path) -> None:
    code = re.findall(r"```python\n(.*?)```", readme_section("Kafka"), re.S)[0]
    (tmp_path / "alerts.py").write_text(code)
    kafka.create_topic("alerts-topic", 1)
    kafka.create_topic("audit-logins", 2)
    kafka.produce("alerts-topic", [json.dumps([{"id": "disk"}, {"id": "cpu"}]).encode()])
    kafka.produce("audit-logins", [b"alice", b"bob"], partition=1)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
        "DBOS_SYSTEM_DATABASE_URL": db_url,
    }
    program = subprocess.Popen(
        [sys.executable, "alerts.py"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    alert_id = kafka_workflow_id("alert-responders", "alerts-topic", 0, 0)
    audit_ids = [kafka_workflow_id("auditors", "audit-logins", 1, offset) for offset in (0, 1)]
    try:
        wait_for(lambda: launched(db_url), timeout=60, what="the program to launch DBOS")
        with DBOSClient(db_url) as client:

            def finished(*workflow_ids: str) -> bool:
                found = client.list_workflows(workflow_ids=list(workflow_ids))
                return len(found) == len(workflow_ids) and {w.status for w in found} == {"SUCCESS"}

            wait_for(lambda: finished(alert_id, *audit_ids), timeout=60, what="the workflows")
            assert client.retrieve_workflow(alert_id).get_result() == [
                "paged on-call for disk",
                "paged on-call for cpu",
            ]
            audits = client.list_workflows(name="audit")
            assert sorted(w.workflow_id for w in audits) == audit_ids
            assert {w.queue_name for w in audits} == {"_dbos_kafka:audit"}
    finally:
        program.send_signal(signal.SIGINT)
        _, err = program.communicate(timeout=30)
    assert program.returncode == 0, err
    assert kafka.committed("alert-responders", "alerts-topic", 1) == [1]
    assert kafka.committed("auditors", "audit-logins", 2) == [-1001, 2]
