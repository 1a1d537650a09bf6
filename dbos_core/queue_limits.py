"""The flow-control settings of a queue, as a plain value (no I/O, no SQLAlchemy).

Shared by the ``Queue`` facade, the dispatcher and the claim in storage.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QueueLimits:
    name: str
    concurrency: int | None = None
    worker_concurrency: int | None = None
    rate_limit: int | None = None
    rate_period_ms: int | None = None
    partitioned: bool = False
    priority_enabled: bool = False
    # The longest the dispatcher waits without a notification before re-checking.
    polling_interval_sec: float = 1.0

    @property
    def has_global_limit(self) -> bool:
        return self.concurrency is not None or self.rate_limit is not None
