"""Cron-scheduled workflows (``@DBOS.scheduled``).

Every process that declares a schedule fires it; the workflow ID is derived from
the function name and the scheduled time, so whichever process inserts the row
first runs it and the others find it there: each time runs exactly once.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..error import DBOSException
from . import context as ctx
from .registry import Registration, registry
from .runtime import DBOSDestroyedError, Runtime, Service, service_factories


class DBOSScheduleError(DBOSException):
    """A schedule that cannot work (bad cron string, wrong workflow signature)."""

    code = "BAD_SCHEDULE"


@dataclass
class Schedule:
    reg: Registration
    cron: str


_lock = threading.Lock()
_schedules: dict[str, Schedule] = {}
_changed = threading.Event()


def _croniter(cron: str, start: datetime) -> Any:
    from croniter import croniter

    # A sixth field is seconds, written first ("*/5 * * * * *": every five seconds).
    return croniter(cron, start, second_at_beginning=True)


def validate_cron(cron: str) -> None:
    from croniter import croniter

    if not isinstance(cron, str) or not cron.strip():
        raise DBOSScheduleError(f"A schedule needs a crontab string, got {cron!r}")
    fields = cron.split()
    if len(fields) not in (5, 6) or not croniter.is_valid(cron, second_at_beginning=True):
        raise DBOSScheduleError(
            f"Invalid crontab schedule {cron!r}: expected 5 fields (minute hour day month "
            "weekday) or 6 with a leading seconds field, as in '*/10 * * * * *'"
        )


def register_schedule(func: Callable[..., Any], cron: str) -> None:
    """Validate and record a schedule for a decorated workflow (at decoration time)."""
    validate_cron(cron)
    reg = getattr(func, "__dbos_registration__", None)
    if not isinstance(reg, Registration) or reg.kind != "workflow":
        raise DBOSScheduleError(
            f"@DBOS.scheduled({cron!r}) must be applied to a workflow: put it above "
            f"@DBOS.workflow() on {getattr(func, '__qualname__', func)!r}"
        )
    try:
        inspect.signature(reg.func).bind(None, None)
    except TypeError:
        raise DBOSScheduleError(
            f"Scheduled workflow {reg.name!r} must take two arguments "
            "(scheduled_time: datetime, actual_time: datetime)"
        ) from None
    with _lock:
        _schedules[reg.name] = Schedule(reg, cron)
    _changed.set()


def registered_schedules() -> list[Schedule]:
    """The schedules this process fires (the dashboard lists them)."""
    with _lock:
        return [s for name, s in _schedules.items() if registry.get(name) is s.reg]


def next_fire_time(cron: str, after: datetime) -> datetime:
    """The first time ``cron`` fires after ``after``."""
    value: datetime = _croniter(cron, after).get_next(datetime)
    return value


def unregister_schedule(name: str) -> None:
    """Stop firing a schedule (tests, or code that replaces a schedule)."""
    with _lock:
        _schedules.pop(name, None)
    _changed.set()


def scheduled_workflow_id(name: str, scheduled_time: datetime) -> str:
    return f"sched-{name}-{scheduled_time.astimezone(UTC).isoformat()}"


def fire(rt: Runtime, schedule: Schedule, scheduled_time: datetime) -> bool:
    """Start the workflow for one scheduled time unless some process already did."""
    from .effects import run_sync
    from .workflows import dispatch, start_protocol

    token = ctx.assigned_id.set(
        ctx.IdAssignment(scheduled_workflow_id(schedule.reg.name, scheduled_time))
    )
    try:
        started = run_sync(
            start_protocol(schedule.reg, (scheduled_time, datetime.now(UTC)), {}, "start")
        )
    finally:
        ctx.assigned_id.reset(token)
    if started.created and started.state is not None:
        dispatch(rt, schedule.reg, started.state, started.call_args, started.call_kwargs)
        return True
    return False


class Scheduler:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dbos-scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        _changed.set()
        self._thread.join(timeout=5.0)

    def _run(self) -> None:
        # Times are computed from launch on: a schedule does not replay times it missed.
        upcoming: dict[str, tuple[Schedule, Any, datetime]] = {}
        while not self._stop.is_set() and not self.rt.stopped:
            _changed.clear()
            with _lock:
                # A workflow dropped from the registry (destroy_registry) stops firing.
                current = {n: s for n, s in _schedules.items() if registry.get(n) is s.reg}
            now = datetime.now(UTC)
            for name, schedule in current.items():
                known = upcoming.get(name)
                if known is None or known[0] is not schedule:
                    it = _croniter(schedule.cron, now)
                    upcoming[name] = (schedule, it, it.get_next(datetime))
            for name in list(upcoming):
                if name not in current:
                    del upcoming[name]
            for name, (schedule, it, when) in list(upcoming.items()):
                if when <= datetime.now(UTC):
                    try:
                        fire(self.rt, schedule, when)
                    except DBOSDestroyedError:
                        return
                    except Exception as exc:
                        self.rt.logger.error(
                            "Scheduled workflow %s at %s failed to start: %s", name, when, exc
                        )
                    upcoming[name] = (schedule, it, it.get_next(datetime))
            if not upcoming:
                wait = None
            else:
                soonest = min(when for _s, _i, when in upcoming.values())
                wait = max(0.0, (soonest - datetime.now(UTC)).total_seconds())
            # A new schedule or stop() sets the event; otherwise sleep until the next time.
            _changed.wait(wait)


def _make_scheduler(rt: Runtime) -> Service | None:
    return Scheduler(rt)


service_factories.append(_make_scheduler)
