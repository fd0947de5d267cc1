"""What ``headwater schedules`` and ``GET /api/schedules`` show: one entry per scheduled job
with its last run, next run, whether it is paused, and its next fire times."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from headwater.config import Schedule
from headwater.errors import ConfigError
from headwater.schedules.timing import fire_times
from headwater.state import runs
from headwater.state import schedules as slots

UPCOMING = 5


def describe_schedules(
    engine: Engine, jobs: dict[str, Schedule], now: datetime, upcoming: int = UPCOMING
) -> list[dict[str, Any]]:
    """JSON-ready, one entry per job, in the project file's order."""
    states = slots.job_states(engine)
    running = runs.running_runs(engine)
    out = []
    for name, schedule in jobs.items():
        recent = runs.list_runs(engine, limit=50, sync=name)
        last = next((r for r in recent if r.status != runs.SKIPPED), None)  # a real run
        times = fire_times(schedule, now, upcoming)
        paused = states[name].paused if name in states else False
        if paused:
            status = "paused"
        elif name in running:
            status = "running"
        elif schedule.after is None and not times:
            status = "ended"
        else:
            status = "scheduled"
        out.append(
            {
                "job": name,
                "schedule": schedule.describe(),
                "status": status,
                "paused": paused,
                "last_run": None
                if last is None
                else {
                    "id": last.id,
                    "status": last.status,
                    "started_at": last.started_at.isoformat(),
                    "finished_at": last.finished_at.isoformat() if last.finished_at else None,
                },
                "next_run": times[0].isoformat() if times else None,
                "after": schedule.after,
                "next_fire_times": [t.isoformat() for t in times],
            }
        )
    return out


def set_job_paused(engine: Engine, jobs: dict[str, Schedule], name: str, paused: bool) -> None:
    """Pause or resume a scheduled job by name; an unknown name is a ConfigError."""
    if name not in jobs:
        known = ", ".join(jobs) or "none"
        raise ConfigError(f"no scheduled job named {name!r} (scheduled: {known})")
    slots.set_paused(engine, name, paused)
