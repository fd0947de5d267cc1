"""``headwater export segments --schedule CRON``: the export on a schedule, in the
foreground, until Ctrl-C. It is serve's scheduler run for this one job (job ``segments``),
so it behaves as the ``schedule:`` in headwater.yml does under serve: a missed slot runs once
on start, a slot is claimed in the state store (serve, or a second terminal, never runs the
same slot again), the job never overlaps itself, ``headwater schedules pause segments``
holds it, and every run is recorded (``headwater runs``). headwater.yml is not changed: to
keep the schedule, write it there and let serve run it."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from datetime import UTC, datetime

from pydantic import ValidationError
from rich.console import Console

from headwater.config import Schedule
from headwater.errors import ConfigError
from headwater.schedules.jobs import JobResult
from headwater.schedules.scheduler import Scheduler
from headwater.schedules.timing import fire_times

JOB = "segments"


def parse_schedule(text: str, timezone: str = "UTC") -> Schedule:
    """``15m``/``2h``/``1d`` is an interval, anything else a cron expression."""
    text = text.strip()
    kind = "every" if text[-1:] in "smhd" and text[:-1].strip().isdigit() else "cron"
    try:
        return Schedule(**{kind: text, "timezone": timezone})
    except ValidationError as exc:
        reasons = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise ConfigError(f"--schedule {text!r}: {reasons}") from None


def run_on_schedule(project, schedule: Schedule, run_once, console: Console) -> None:
    """Run ``run_once(stop)`` (one export, returning its report) at each slot of
    ``schedule`` until SIGINT/SIGTERM; a run in progress then stops as under serve."""
    from headwater.state.db import open_state

    engine = open_state(project.state_url)
    try:
        asyncio.run(_loop(engine, schedule, run_once, console))
    finally:
        engine.dispose()


async def _loop(engine, schedule: Schedule, run_once, console: Console) -> None:
    scheduler: Scheduler

    def run(_name: str) -> JobResult:
        report = run_once(scheduler.cancel)
        upcoming = fire_times(schedule, datetime.now(UTC), 1)
        if upcoming:
            console.print(f"next run {upcoming[0]:%Y-%m-%d %H:%M:%S UTC} · Ctrl-C to stop")
        return JobResult(report.run_id, report.status, report.error)

    scheduler = Scheduler(engine, {JOB: schedule}, run)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stopping.set)
    scheduler.start()  # (prepares: a slot missed since the last run is due at once)
    first = scheduler.next_due.get(JOB)
    when = f"{first:%Y-%m-%d %H:%M:%S UTC}" if first else "never (the schedule has ended)"
    console.print(f"export {JOB} on {schedule.describe()}: next run {when} · Ctrl-C to stop")
    await stopping.wait()
    console.print("stopping: a run in progress finishes or is recorded interrupted")
    await scheduler.stop()
