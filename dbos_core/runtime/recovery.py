"""Recovery as a service: at launch, then every ``recovery_interval`` seconds.

The first pass resumes what this executor left PENDING when its process died; the
later passes take over the work of sibling processes (same executor ID) that died
while this one runs. Liveness locks (runtime/liveness.py) keep live owners' work
where it is.
"""

from __future__ import annotations

import threading

from .runtime import Runtime, service_factories
from .workflows import recover_pending


class RecoveryService:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dbos-recovery", daemon=True)

    def start(self) -> None:
        # The first pass runs before the other services start, so that the queue
        # dispatcher counts the recovered workflows against this process's slots.
        recover_pending(self.rt)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        interval = self.rt.config.recovery_interval
        while not self._stop.wait(interval):
            recover_pending(self.rt)


# First: see start().
service_factories.insert(0, RecoveryService)
