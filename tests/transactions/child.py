"""A child process of the crash tests: one backend, one workflow, one crash.

    python child.py BACKEND SYS_URL APP_URL LOG MODE WORKFLOW_ID...

MODE ``after-commit``: run the workflow (its transaction inserts an item named after
the workflow); SIGKILL right after its transaction committed, before the step reaches the
system database. ``before-commit``: SIGKILL inside the transaction, after its writes.
``recover``: launch (recovery resumes the workflows), wait for their results, print
them as JSON.
"""

from __future__ import annotations

import faulthandler
import json
import os
import signal
import sys
from pathlib import Path

backend_name, sys_url, app_url, log, mode, *workflow_ids = sys.argv[1:]
# A child that hangs prints where every thread is, and exits, before the test gives up.
faulthandler.dump_traceback_later(50, exit=True)
if backend_name == "django-orm":
    # Not the test settings of the parent: the harness configures a minimal project.
    os.environ.pop("DJANGO_SETTINGS_MODULE", None)

from tests.transactions import common  # noqa: E402
from tests.transactions.harness import harness_for  # noqa: E402

common.log_path = Path(log)
harness = harness_for(backend_name, sys_url, app_url)
harness.launch()
if mode == "recover":
    results = {wf: harness.recover(wf) for wf in workflow_ids}
    print(json.dumps(results), flush=True)
    harness.destroy()
    sys.exit(0)
if mode == "after-commit":
    harness.wrap_backend_run(lambda: os.kill(os.getpid(), signal.SIGKILL))
else:
    common.crash_mode = "before-commit"
harness.add_item(workflow_ids[0], workflow_ids[0])
print("not killed", flush=True)
sys.exit(3)
