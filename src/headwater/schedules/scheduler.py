"""The loop ``headwater serve`` runs scheduled jobs with.

Rules, and where each is kept:
- A slot runs once, whichever process sees it: it is claimed by inserting (job, slot) under
  a UNIQUE key (``state.schedules.claim_slot``); the loser does nothing.
- Slots missed while no scheduler ran are run once, not once each: on start, and on a late
  wake-up, only the latest slot due is claimed (``timing.latest_fire``). A slot from before
  the job was first seen was never missed.
- A job never overlaps itself: a slot that comes due while the job runs (here, in another
  process, or by hand) is claimed and recorded as a ``skipped`` run saying which run held it.
- A run killed with its process is marked interrupted when a scheduler starts; the next slot
  runs the sync again, and the sync engine's snapshot makes that resume with nothing lost.
- A graceful stop (``stop(deadline)``) lets a running job finish until shortly before the
  deadline, then sets ``cancel``: the sync engine sends nothing more, settles what is in
  flight and records its run ``interrupted``. A run still going at the deadline is recorded
  ``interrupted`` here, so no record is left ``running`` behind a stopped server.
- ``after: X`` jobs run once per successful run of X, keyed by X's run id.

Time comes from ``clock`` (injected by tests); the loop sleeps until the next slot, capped so
a wall-clock jump is noticed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine

from headwater.config import Schedule
from headwater.schedules.jobs import JobResult, RunJob
from headwater.schedules.timing import latest_fire, next_fire
from headwater.state import runs
from headwater.state import schedules as slots

log = logging.getLogger("headwater.schedules")

MAX_SLEEP_SECONDS = 30.0  # re-read the clock at least this often (clock jumps, DST)
AFTER_POLL_SECONDS = 5.0  # how often ``after:`` jobs look for their upstream's new runs
STOP_WAIT_SECONDS = 10.0  # how long ``stop`` lets a running job finish when given no deadline
CANCEL_LEAD_SECONDS = 2.0  # asked to stop this long before the deadline, to record itself
OK_STATUSES = (runs.SUCCEEDED, runs.PARTIAL)

Clock = Callable[[], datetime]


def wall_clock() -> datetime:
    return datetime.now(UTC)


class Scheduler:
    def __init__(
        self,
        engine: Engine,
        jobs: dict[str, Schedule],
        run_job: RunJob,
        *,
        clock: Clock = wall_clock,
        max_parallel: int = 1,
        cancel: threading.Event | None = None,
    ) -> None:
        """``cancel`` is the event ``run_job`` watches (``job_runner(project, cancel)``);
        ``stop`` sets it when a running job must end."""
        self.engine = engine
        self.jobs = dict(jobs)
        self.run_job = run_job
        self.clock = clock
        self.max_parallel = max_parallel
        self.next_due: dict[str, datetime | None] = {}
        self.after_seen: dict[str, int] = {}  # after-job -> upstream run id already handled
        self.running: dict[str, asyncio.Future] = {}
        self._slots: asyncio.Semaphore | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._stopping = False
        self._prepared = False
        self.cancel = cancel or threading.Event()

    # ------------------------------------------------------------------ start-up

    def prepare(self) -> None:
        """Mark runs whose process died, register jobs, and decide each job's first slot:
        the latest one missed (if any) or the next one."""
        slots.ensure_tables(self.engine)
        runs.mark_interrupted(self.engine)
        now = self.clock()
        states = slots.register_jobs(self.engine, list(self.jobs), now)
        last = slots.last_slots(self.engine)
        upstream_ok = runs.last_succeeded(
            self.engine, {s.after for s in self.jobs.values() if s.after}
        )
        for name, schedule in self.jobs.items():
            if schedule.after is not None:
                previous = last.get(name)
                seen = _after_run_id(previous.slot) if previous else None
                self.after_seen[name] = (
                    seen if seen is not None else upstream_ok.get(schedule.after, 0)
                )
                continue
            missed = latest_fire(schedule, now)
            previous = last.get(name)
            if (
                missed is not None
                and missed >= states[name].first_seen_at
                and (previous is None or missed > previous.due_at)
            ):
                self.next_due[name] = missed
            else:
                self.next_due[name] = next_fire(schedule, now)
        self._prepared = True

    # ------------------------------------------------------------------ one pass

    async def tick(self) -> datetime | None:
        """Start every slot due at ``clock()``; return when the next one falls due. The
        state store is read and written from a thread, off the server's event loop."""
        if not self._prepared:
            self.prepare()
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_parallel)
        now = self.clock()
        wanted: list[tuple[str, str, datetime]] = []
        for name, at in self.next_due.items():
            if at is not None and at <= now:
                schedule = self.jobs[name]
                slot_at = latest_fire(schedule, now) or at
                self.next_due[name] = next_fire(schedule, now)
                wanted.append((name, slots.slot_key(slot_at), slot_at))
        if self.after_seen or wanted:
            queued = set(self.running)
            to_start = await asyncio.to_thread(self._claim, wanted, now, queued)
            for name, slot_id, key in to_start:
                future = asyncio.get_running_loop().create_future()
                self.running[name] = future
                asyncio.get_running_loop().create_task(self._run(name, slot_id, key, future))
        upcoming = [at for at in self.next_due.values() if at is not None]
        return min(upcoming, default=None)

    def _claim(
        self, wanted: list[tuple[str, str, datetime]], now: datetime, queued: set[str]
    ) -> list[tuple[str, int, str]]:
        """Claim the due slots of jobs not paused; record the ones whose job is still
        running as skipped; return the (job, slot id, slot) to start."""
        wanted = wanted + [(name, key, now) for name, key in self._after_due()]
        if not wanted:
            return []
        paused = slots.paused_jobs(self.engine)
        wanted = [w for w in wanted if w[0] not in paused]
        won = slots.claim_slots(self.engine, wanted, now)
        if not won:
            return []
        busy = runs.running_runs(self.engine)
        start = []
        for (name, key), slot_id in won.items():
            if name in busy:
                self._skip(name, slot_id, key, f"run {busy[name]} was still running")
            elif name in queued:
                self._skip(name, slot_id, key, "its previous slot was still queued here")
            else:
                start.append((name, slot_id, key))
        return start

    def _after_due(self) -> list[tuple[str, str]]:
        if not self.after_seen:
            return []
        upstream_ok = runs.last_succeeded(
            self.engine, {self.jobs[n].after for n in self.after_seen}
        )
        out = []
        for name in self.after_seen:
            upstream = self.jobs[name].after
            assert upstream is not None
            run_id = upstream_ok.get(upstream, 0)
            if run_id > self.after_seen[name]:
                self.after_seen[name] = run_id
                out.append((name, f"after:{upstream}:{run_id}"))
        return out

    def _skip(self, name: str, slot_id: int, key: str, why: str) -> None:
        run_id = runs.record_skipped(self.engine, name, f"slot {key} skipped: {why}")
        slots.finish_slot(self.engine, slot_id, slots.SKIPPED, run_id)
        log.info("schedule %s: slot %s skipped: %s", name, key, why)

    async def _run(self, name: str, slot_id: int, key: str, future: asyncio.Future) -> None:
        assert self._slots is not None
        try:
            async with self._slots:
                result = await _in_thread(lambda: self.run_job(name))
            if result.run_id is None:
                # Refused before it started: a run by hand (or elsewhere) got there first.
                why = result.error or "the job did not start"
                await asyncio.to_thread(self._skip, name, slot_id, key, why)
            else:  # the slot row stays "claimed": the run record tells how it went
                log.info("schedule %s: slot %s ran as run %s (%s)", name, key,
                         result.run_id, result.status)  # fmt: skip
        except Exception:
            log.exception("schedule %s: slot %s failed to run", name, key)
        finally:
            self.running.pop(name, None)
            future.set_result(None)
            if self._wake is not None:
                self._wake.set()  # an ``after:`` job may be due now

    async def drain(self) -> None:
        """Wait for every run started so far (tests, shutdown)."""
        while self.running:
            await asyncio.gather(*self.running.values())

    # ------------------------------------------------------------------ the loop

    async def loop(self) -> None:
        self._wake = asyncio.Event()
        while not self._stopping:
            try:
                next_at = await self.tick()
            except Exception:
                log.exception("scheduler pass failed; trying again")
                next_at = None
            delay = MAX_SLEEP_SECONDS
            if next_at is not None:
                delay = min(delay, (next_at - self.clock()).total_seconds())
            if self.after_seen:
                delay = min(delay, AFTER_POLL_SECONDS)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(delay, 0.0))
            self._wake.clear()

    def start(self) -> asyncio.Task:
        self.prepare()
        self._task = asyncio.get_running_loop().create_task(self.loop(), name="scheduler")
        return self._task

    async def stop(self, deadline: float | None = None) -> None:
        """Stop firing slots and let running jobs finish until ``deadline`` (a
        ``time.monotonic()`` value; default ``STOP_WAIT_SECONDS`` from now). Shortly before
        it, ask them to stop (``cancel``): a sync records itself interrupted with what it
        sent. One still running at the deadline is recorded interrupted here; the next slot
        resumes it (the engine's snapshot keeps what Braze accepted)."""
        self._stopping = True
        if self._wake is not None:
            self._wake.set()
        if self._task is not None:
            await self._task
        if not self.running:
            return
        if deadline is None:
            deadline = time.monotonic() + STOP_WAIT_SECONDS
        lead = min(CANCEL_LEAD_SECONDS, max(0.0, deadline - time.monotonic()) / 2)
        await self._wait_running(deadline - lead)
        if not self.running:
            return
        self.cancel.set()
        await self._wait_running(deadline)
        if self.running:
            names = list(self.running)
            marked = await asyncio.to_thread(self._mark_interrupted, names)
            log.warning("schedule: stopped before run(s) %s finished; recorded as interrupted",
                        ", ".join(map(str, marked)) or "-")  # fmt: skip

    async def _wait_running(self, until: float) -> None:
        pending = list(self.running.values())
        if pending:
            await asyncio.wait(pending, timeout=max(0.0, until - time.monotonic()))

    def _mark_interrupted(self, names: list[str]) -> list[int]:
        """Close the runs this process started for ``names`` as interrupted."""
        busy = runs.running_runs(self.engine)
        marked = []
        for name in names:
            run_id = busy.get(name)
            record = runs.get_run(self.engine, run_id) if run_id is not None else None
            if record is not None and record.pid == os.getpid():
                runs.finish_run(
                    self.engine, run_id, status=runs.INTERRUPTED,
                    error="the server stopped before the run finished",
                )  # fmt: skip
                marked.append(run_id)
        return marked


def _after_run_id(key: str) -> int | None:
    if not key.startswith("after:"):
        return None
    try:
        return int(key.rsplit(":", 1)[1])
    except ValueError:
        return None


async def _in_thread(fn: Callable[[], JobResult]) -> JobResult:
    """Run ``fn`` in a daemon thread: a sync in progress must not keep a stopping server
    alive (a run cut short is interrupted, then resumed by the next slot)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[JobResult] = loop.create_future()

    def work() -> None:
        try:
            result = fn()
        except BaseException as exc:  # handed to the awaiting task
            loop.call_soon_threadsafe(_settle, future, None, exc)
        else:
            loop.call_soon_threadsafe(_settle, future, result, None)

    threading.Thread(target=work, name="scheduled-job", daemon=True).start()
    return await future


def _settle(future: asyncio.Future, result: JobResult | None, exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
