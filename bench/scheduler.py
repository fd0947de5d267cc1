"""Scheduler overhead: 1,000 jobs at ``every: 1m`` on one process, on the wall clock.

Each job, when its slot fires, returns at once, so what is measured is the scheduler's own
cost: claiming 1,000 slots a minute under the unique key, starting each job in its worker
thread, and sleeping in between. With ``--record-runs`` each job also writes its run record
(start and finish), the least a sync that finds nothing changed does. CPU is the whole
process's (every thread), over whole minutes.

    python -m bench.scheduler                       # 2 minutes, SQLite state in a temp dir
    python -m bench.scheduler --record-runs
    python -m bench.scheduler --state postgresql://127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

from headwater.config import Schedule
from headwater.schedules.scheduler import JobResult, Scheduler
from headwater.state import runs
from headwater.state import schedules as slots
from headwater.state.db import open_state

TARGET_PERCENT = 5.0


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(state_url: str, jobs: int, minutes: float, record_runs: bool) -> dict[str, float]:
    engine = open_state(state_url)
    slots.ensure_tables(engine)
    names = [f"job{i:04d}" for i in range(jobs)]
    schedule = Schedule(every="1m")

    started = 0

    def run_job(name: str) -> JobResult:
        nonlocal started
        started += 1
        if not record_runs:
            return JobResult(started, runs.SUCCEEDED)
        run_id = runs.start_run(engine, name)
        return JobResult(run_id, runs.finish_run(engine, run_id))

    scheduler = Scheduler(engine, dict.fromkeys(names, schedule), run_job, max_parallel=4)
    scheduler.start()
    cpu0, wall0 = cpu_seconds(), time.monotonic()
    await asyncio.sleep(minutes * 60)
    cpu, wall = cpu_seconds() - cpu0, time.monotonic() - wall0
    await scheduler.stop()
    await scheduler.drain()
    with engine.connect() as conn:
        claimed = conn.execute(select(func.count()).select_from(slots.schedule_slots)).scalar_one()
    engine.dispose()
    return {"cpu": cpu, "wall": wall, "runs": started, "slots": claimed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--state", default=None, help="state URL (default: SQLite in a temp dir)")
    parser.add_argument("--record-runs", action="store_true", help="each job writes a run record")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.state or f"sqlite:///{Path(tmp) / 'state.db'}"
        figures = asyncio.run(measure(url, args.jobs, args.minutes, args.record_runs))
    percent = 100 * figures["cpu"] / figures["wall"]
    print(f"command: python -m bench.scheduler --jobs {args.jobs} --minutes {args.minutes:g}"
          + (" --record-runs" if args.record_runs else "")
          + (f" --state {args.state.split('@')[-1]}" if args.state else ""))  # fmt: skip
    print(
        f"jobs: {args.jobs} at every: 1m; slots claimed: {figures['slots']:,}; "
        f"jobs run: {figures['runs']:,}" + (" (each with a run record)" if args.record_runs else "")
    )
    print(f"wall: {figures['wall']:.1f} s; process CPU: {figures['cpu']:.2f} s")
    print(f"idle cost: {percent:.2f} % of a core (target < {TARGET_PERCENT:g} %)")
    print(f"per slot: {1000 * figures['cpu'] / max(figures['runs'], 1):.2f} ms CPU")


if __name__ == "__main__":
    main()
