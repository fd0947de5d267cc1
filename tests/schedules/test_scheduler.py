"""The scheduler's rules, with time driven by an injected clock and real state stores
(a SQLite file and PostgreSQL): one run per slot across schedulers, missed slots run once,
no overlap (the slot is skipped and the history says so), pause survives a restart,
``after:`` chains, and runs left by a dead process marked interrupted."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from headwater.config import Schedule
from headwater.schedules.jobs import JobResult
from headwater.schedules.scheduler import Scheduler
from headwater.schedules.view import describe_schedules, set_job_paused
from headwater.state import runs
from headwater.state import schedules as slots
from headwater.state.db import open_state

T0 = datetime(2026, 5, 1, 9, 59, 30, tzinfo=UTC)
EVERY_MINUTE = {"contacts": Schedule(every="1m")}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class Jobs:
    """Runs a job as the sync engine would record it; a gate holds a run open."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.calls: list[str] = []
        self.gates: dict[str, threading.Event] = {}
        self.started = threading.Event()
        self.fail: set[str] = set()

    def __call__(self, name: str) -> JobResult:
        run_id = runs.start_run(self.engine, name)
        self.calls.append(name)
        self.started.set()
        gate = self.gates.get(name)
        if gate is not None:
            assert gate.wait(30), "the test never opened the gate"
        error = "boom" if name in self.fail else None
        return JobResult(run_id, runs.finish_run(self.engine, run_id, error=error), error)


@pytest.fixture
def engine(state_url):
    engine = open_state(state_url)
    yield engine
    engine.dispose()


def run(coro):
    return asyncio.run(coro)


async def tick_and_drain(scheduler: Scheduler) -> datetime | None:
    upcoming = await scheduler.tick()
    await scheduler.drain()
    return upcoming


def statuses(engine, job: str = "contacts") -> list[str]:
    return [r.status for r in reversed(runs.list_runs(engine, sync=job))]


def test_a_slot_runs_at_its_time_and_not_before(engine):
    clock, jobs = Clock(T0), Jobs(engine)
    scheduler = Scheduler(engine, EVERY_MINUTE, jobs, clock=clock)

    async def scenario():
        assert await tick_and_drain(scheduler) == datetime(2026, 5, 1, 10, tzinfo=UTC)
        assert jobs.calls == []
        clock.advance(seconds=30)
        await tick_and_drain(scheduler)
        assert jobs.calls == ["contacts"]
        await tick_and_drain(scheduler)  # the same instant again: nothing more
        assert jobs.calls == ["contacts"]

    run(scenario())
    assert statuses(engine) == ["succeeded"]


def test_two_schedulers_on_one_store_run_a_slot_once(engine, state_url):
    other_engine = open_state(state_url)
    clock = Clock(T0)
    mine, theirs = Jobs(engine), Jobs(other_engine)
    first = Scheduler(engine, EVERY_MINUTE, mine, clock=clock)
    second = Scheduler(other_engine, EVERY_MINUTE, theirs, clock=clock)

    async def scenario():
        await asyncio.gather(first.tick(), second.tick())
        clock.advance(seconds=30)
        for _ in range(3):  # each slot, both schedulers, in either order
            await asyncio.gather(first.tick(), second.tick())
            await asyncio.gather(first.drain(), second.drain())
            clock.advance(minutes=1)

    try:
        run(scenario())
    finally:
        other_engine.dispose()
    assert len(mine.calls) + len(theirs.calls) == 3
    assert statuses(engine) == ["succeeded"] * 3


def test_slots_missed_while_down_run_once_on_start(engine):
    clock, jobs = Clock(T0), Jobs(engine)

    async def scenario():
        await tick_and_drain(Scheduler(engine, EVERY_MINUTE, jobs, clock=clock))
        clock.advance(seconds=30)
        await tick_and_drain(Scheduler(engine, EVERY_MINUTE, jobs, clock=clock))
        assert jobs.calls == ["contacts"]
        clock.advance(minutes=42, seconds=10)  # down for 42 slots
        restarted = Scheduler(engine, EVERY_MINUTE, jobs, clock=clock)
        upcoming = await tick_and_drain(restarted)
        await tick_and_drain(restarted)
        assert jobs.calls == ["contacts", "contacts"]
        assert upcoming == datetime(2026, 5, 1, 10, 43, tzinfo=UTC)

    run(scenario())
    assert slots.last_slots(engine)["contacts"].slot == "2026-05-01T10:42:00Z"


def test_a_job_first_seen_now_does_not_run_for_slots_before_it_existed(engine):
    clock, jobs = Clock(T0), Jobs(engine)
    run(
        tick_and_drain(
            Scheduler(engine, {"nightly": Schedule(cron="0 2 * * *")}, jobs, clock=clock)
        )
    )
    assert jobs.calls == []


def test_a_job_still_running_skips_its_next_slot_and_the_history_says_so(engine):
    clock, jobs = Clock(T0 + timedelta(seconds=30)), Jobs(engine)
    jobs.gates["contacts"] = threading.Event()
    scheduler = Scheduler(engine, EVERY_MINUTE, jobs, clock=clock)
    runs.finish_run(engine, runs.start_run(engine, "warm-up"))  # run ids start elsewhere

    async def scenario():
        scheduler.prepare()
        clock.advance(minutes=1)
        await scheduler.tick()
        await asyncio.to_thread(jobs.started.wait, 30)
        clock.advance(minutes=1)
        await scheduler.tick()  # the first run is still going
        jobs.gates["contacts"].set()
        await scheduler.drain()
        clock.advance(minutes=1)
        await tick_and_drain(scheduler)

    run(scenario())
    history = list(reversed(runs.list_runs(engine, sync="contacts")))
    assert [r.status for r in history] == ["succeeded", "skipped", "succeeded"]
    first, skipped = history[0], history[1]
    assert skipped.error == f"slot 2026-05-01T10:02:00Z skipped: run {first.id} was still running"
    assert jobs.calls == ["contacts", "contacts"]


def test_a_slot_refused_by_a_run_started_by_hand_is_recorded_as_skipped(engine):
    clock = Clock(T0)
    manual = runs.start_run(engine, "contacts")  # `headwater sync contacts` is running

    def refuse(name: str) -> JobResult:
        raise AssertionError("the scheduler must not start a second run")

    scheduler = Scheduler(engine, EVERY_MINUTE, refuse, clock=clock)

    async def scenario():
        await scheduler.tick()
        clock.advance(seconds=30)
        await tick_and_drain(scheduler)

    run(scenario())
    skipped = runs.list_runs(engine, sync="contacts")[0]
    assert skipped.status == "skipped" and f"run {manual} was still running" in skipped.error


def test_pause_survives_a_restart_and_resume_runs_the_next_slot(engine):
    clock, jobs = Clock(T0), Jobs(engine)

    async def scenario():
        await tick_and_drain(Scheduler(engine, EVERY_MINUTE, jobs, clock=clock))
        set_job_paused(engine, EVERY_MINUTE, "contacts", True)
        clock.advance(minutes=3)
        restarted = Scheduler(engine, EVERY_MINUTE, jobs, clock=clock)
        await tick_and_drain(restarted)
        assert jobs.calls == []
        [entry] = describe_schedules(engine, EVERY_MINUTE, clock())
        assert entry["paused"] and entry["status"] == "paused"
        set_job_paused(engine, EVERY_MINUTE, "contacts", False)
        await tick_and_drain(restarted)  # the slot that passed while paused is not run
        assert jobs.calls == []
        clock.advance(minutes=1)
        await tick_and_drain(restarted)
        assert jobs.calls == ["contacts"]

    run(scenario())


def test_after_runs_once_per_successful_run_of_the_job_before_it(engine):
    chain = {"contacts": Schedule(every="1m"), "orders": Schedule(after="contacts")}
    clock, jobs = Clock(T0), Jobs(engine)
    scheduler = Scheduler(engine, chain, jobs, clock=clock)

    async def scenario():
        await tick_and_drain(scheduler)
        clock.advance(seconds=30)
        await tick_and_drain(scheduler)  # contacts runs
        await tick_and_drain(scheduler)  # orders follows
        await tick_and_drain(scheduler)
        assert jobs.calls == ["contacts", "orders"]
        jobs.fail.add("contacts")
        clock.advance(minutes=1)
        await tick_and_drain(scheduler)
        await tick_and_drain(scheduler)
        assert jobs.calls == ["contacts", "orders", "contacts"]  # a failure triggers nothing

    run(scenario())


def test_a_run_left_by_a_dead_process_is_marked_interrupted_on_start(engine):
    run_id = runs.start_run(engine, "contacts")
    from sqlalchemy import update

    with engine.begin() as conn:  # its process is gone: a pid that cannot be alive
        conn.execute(update(runs.runs).where(runs.runs.c.id == run_id).values(pid=2**22 + 1))
    Scheduler(engine, EVERY_MINUTE, Jobs(engine), clock=Clock(T0)).prepare()
    assert runs.get_run(engine, run_id).status == "interrupted"
    with engine.connect() as conn:
        stored = conn.execute(runs.runs.select().where(runs.runs.c.id == run_id)).mappings().one()
    assert stored["status"] == "interrupted"


def test_the_listing_shows_last_run_next_run_and_five_fire_times(engine):
    clock = Clock(T0 + timedelta(seconds=30))
    nightly = {"contacts": Schedule(cron="0 2 * * *", timezone="Europe/Paris")}
    runs.finish_run(engine, runs.start_run(engine, "contacts"))
    [entry] = describe_schedules(engine, nightly, clock())
    assert entry["schedule"] == "cron 0 2 * * * Europe/Paris"
    assert entry["last_run"]["status"] == "succeeded" and entry["status"] == "scheduled"
    assert entry["next_run"] == "2026-05-02T00:00:00+00:00"
    assert len(entry["next_fire_times"]) == 5


def test_a_clock_set_back_never_runs_a_slot_twice(engine):
    clock, jobs = Clock(T0), Jobs(engine)

    async def scenario():
        scheduler = Scheduler(engine, EVERY_MINUTE, jobs, clock=clock)
        await tick_and_drain(scheduler)
        clock.advance(minutes=2, seconds=30)  # 10:02:00
        await tick_and_drain(scheduler)
        assert jobs.calls == ["contacts"]
        clock.advance(minutes=-2)  # the wall clock is set back past two slots
        for restarted in (scheduler, Scheduler(engine, EVERY_MINUTE, jobs, clock=clock)):
            await tick_and_drain(restarted)
            clock.advance(minutes=1)  # 10:01, then 10:02 again
            await tick_and_drain(restarted)
            clock.advance(minutes=-1)
        assert jobs.calls == ["contacts", "contacts"]  # 10:02's slot once, 10:01's once

    run(scenario())
    slots_run = sorted(s for s in _slot_keys(engine))
    assert slots_run == ["2026-05-01T10:01:00Z", "2026-05-01T10:02:00Z"]


def _slot_keys(engine) -> list[str]:
    with engine.connect() as conn:
        return [row[0] for row in conn.execute(slots.schedule_slots.select().with_only_columns(
            slots.schedule_slots.c.slot))]  # fmt: skip


class SlowJob:
    """A scheduled sync that takes long: it runs until its gate opens, or, if it honours
    ``cancel`` (as the sync engine does), until asked to stop, recording itself."""

    def __init__(self, engine, cancel: threading.Event, *, honours_cancel: bool) -> None:
        self.engine, self.cancel, self.honours_cancel = engine, cancel, honours_cancel
        self.started = threading.Event()
        self.gate = threading.Event()

    def __call__(self, name: str) -> JobResult:
        run_id = runs.start_run(self.engine, name)
        self.started.set()
        while not self.gate.wait(0.01):
            if self.honours_cancel and self.cancel.is_set():
                status = runs.finish_run(self.engine, run_id, status=runs.INTERRUPTED)
                return JobResult(run_id, status)
        if self.honours_cancel:
            return JobResult(run_id, runs.finish_run(self.engine, run_id))
        return JobResult(run_id, runs.INTERRUPTED)  # a stuck thread that the process outlives


def _start_slow(engine, *, honours_cancel: bool) -> tuple[Scheduler, SlowJob, Clock]:
    clock, cancel = Clock(T0 + timedelta(seconds=30)), threading.Event()
    job = SlowJob(engine, cancel, honours_cancel=honours_cancel)
    return Scheduler(engine, EVERY_MINUTE, job, clock=clock, cancel=cancel), job, clock


async def _run_first_slot(scheduler: Scheduler, job: SlowJob, clock: Clock) -> None:
    scheduler.prepare()
    clock.advance(minutes=1)
    await scheduler.tick()
    assert await asyncio.to_thread(job.started.wait, 30)


def test_stop_waits_for_a_running_scheduled_sync_to_finish_before_the_deadline(engine):
    scheduler, job, clock = _start_slow(engine, honours_cancel=True)

    async def scenario():
        await _run_first_slot(scheduler, job, clock)
        stopping = asyncio.create_task(scheduler.stop(time.monotonic() + 60))
        await asyncio.sleep(0)
        assert not stopping.done()  # still waiting for the run
        job.gate.set()  # the sync finishes on its own
        await asyncio.wait_for(stopping, 30)

    run(scenario())
    assert statuses(engine) == ["succeeded"]
    assert not job.cancel.is_set()


def test_stop_asks_a_running_sync_to_stop_before_the_deadline_and_it_records_itself(engine):
    scheduler, job, clock = _start_slow(engine, honours_cancel=True)

    async def scenario():
        await _run_first_slot(scheduler, job, clock)
        await scheduler.stop(time.monotonic() + 0.5)

    run(scenario())
    assert job.cancel.is_set()
    assert statuses(engine) == ["interrupted"]


def test_a_sync_still_running_at_the_deadline_is_recorded_interrupted_not_left_running(engine):
    scheduler, job, clock = _start_slow(engine, honours_cancel=False)

    async def scenario():
        await _run_first_slot(scheduler, job, clock)
        await scheduler.stop(time.monotonic() + 0.2)
        assert statuses(engine) == ["interrupted"]
        (record,) = runs.list_runs(engine, sync="contacts")
        assert record.error == "the server stopped before the run finished"
        job.gate.set()  # let the thread end before the store closes
        await scheduler.drain()

    run(scenario())
