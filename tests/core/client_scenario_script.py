"""Run as a separate process: the seeds' operator script, through DBOSClient only.

Finds the workflows that failed in a time window, inspects their steps and forks
those that failed on the outage from step 2. Prints the forked IDs as JSON.
"""

from __future__ import annotations

import json
import sys

from dbos_core import DBOSClient, SetWorkflowID
from tests.core.scenario_helpers import ServiceOutage

url, start_time, end_time = sys.argv[1:4]
client = DBOSClient(url)
forked = []
try:
    workflows = client.list_workflows(status="ERROR", start_time=start_time, end_time=end_time)
    for workflow in workflows:
        steps = client.list_workflow_steps(workflow)
        if len(steps) >= 3 and isinstance(steps[2]["error"], ServiceOutage):
            with SetWorkflowID(f"{workflow.workflow_id}-fork"):
                handle = client.fork_workflow(workflow.workflow_id, 2)
            forked.append(handle.get_workflow_id())
finally:
    client.close()
print(json.dumps(forked))
