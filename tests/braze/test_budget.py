"""The destination's rate budget: the limit it states is the most ever sent, by every client
of the destination together, in one process and across processes on PostgreSQL.

Time is a fake clock that moves only when someone waits, so windows are exact."""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import pytest
from sqlalchemy import create_engine, select

from headwater.braze.budget import (
    BucketLimit,
    MemoryWindows,
    RateBudget,
    check_rate_limits,
    default_limits,
    destination_key,
    shared_budget,
)
from headwater.braze.client import BrazeClient, TrackItem
from headwater.braze.ratelimit import RateGovernor
from headwater.state.budgets import PostgresWindows, rate_budgets, window_counter
from headwater.state.db import normalise_url, open_state
from headwater.testing import serve_in_thread
from headwater.testing.sink import TrackSink

KEY = "budget-test-key"
EPOCH = 1_800_000_000.0  # a multiple of 10 s and of an hour: windows start here


class FakeTime:
    """Wall time that moves only when a waiter sleeps (to the latest wake-up asked for)."""

    def __init__(self) -> None:
        self.now = EPOCH

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        target = self.now + seconds
        await asyncio.sleep(0)
        self.now = max(self.now, target)


@contextlib.contextmanager
def running(sink: TrackSink) -> Iterator[str]:
    with serve_in_thread(sink) as server:
        yield server.url


def items(count: int) -> list[TrackItem]:
    return [TrackItem("attributes", {"external_id": f"u{i}", "n": i}, i) for i in range(count)]


async def send_recording_windows(
    client: BrazeClient, clock: FakeTime, count: int, window: float
) -> Counter:
    """Send ``count`` objects; count the requests by the (fake) window they left in."""
    windows: Counter = Counter()
    send = client._sender.send

    async def recording_send(*args, **kwargs):
        windows[math.floor(clock.now / window)] += 1
        return await send(*args, **kwargs)

    client._sender.send = recording_send
    summary = await client.track(items(count))
    assert summary.accepted == count
    return windows


@pytest.mark.anyio
async def test_a_one_request_per_ten_seconds_limit_sends_one_request_per_window():
    clock = FakeTime()
    budget = RateBudget({"users.track": BucketLimit(1, 10)}, clock=clock.time, sleep=clock.sleep)
    sink = TrackSink()
    with running(sink) as url:
        async with BrazeClient(url, KEY, budget=budget, governor=RateGovernor(),
                               max_concurrency=8, http="httpx") as client:  # fmt: skip
            windows = await send_recording_windows(client, clock, 75 * 5, 10)

    assert sink.stats.track_requests == 5
    assert max(windows.values()) == 1  # never more than the limit in a window
    assert len(windows) == 5
    assert clock.now - EPOCH < 50  # and no window was wasted either


@pytest.mark.anyio
async def test_the_budget_counts_each_bucket_apart():
    clock = FakeTime()
    budget = RateBudget({"users.track": BucketLimit(2, 10)}, clock=clock.time, sleep=clock.sleep)
    for _ in range(2):
        assert await budget.acquire("users.track") == 0
    assert await budget.acquire("users.export.ids") == 0  # another bucket, its own budget
    assert await budget.acquire("users.track") == pytest.approx(10)
    assert clock.now == EPOCH + 10


def test_every_client_of_a_destination_in_a_process_shares_one_budget():
    one = BrazeClient("http://127.0.0.1:9/", KEY)
    two = BrazeClient("http://127.0.0.1:9", KEY, rate_limits={"users.track": BucketLimit(5, 1)})
    other_key = BrazeClient("http://127.0.0.1:9", "another-key")

    assert one.budget is two.budget
    assert one.budget.limit("users.track") == BucketLimit(5, 1)  # the latest rate_limits
    assert other_key.budget is not one.budget


def test_braze_documented_limits_are_the_defaults():
    limits = default_limits()
    assert limits["users.track"] == BucketLimit(3000, 3)
    assert limits["users.export.ids"] == BucketLimit(250, 60)
    assert limits["users.identity"] == BucketLimit(20000, 60)


def test_unknown_buckets_and_endpoint_names_are_named_in_the_project_check():
    problems: list = []
    raw = {"destinations": {"braze": {"rate_limits": {
        "users.track": {}, "users.delete": {}, "users.trak": {}}}}}  # fmt: skip
    check_rate_limits(raw, lambda loc, message: problems.append((loc, message)))

    assert problems[0] == (
        ("destinations", "braze", "rate_limits", "users.delete"),
        "users.delete shares the rate bucket 'users.identity'; set that",
    )
    assert problems[1][1].startswith("unknown rate bucket 'users.trak' (buckets: ")
    assert len(problems) == 2


# --------------------------------------------------------------------------- PostgreSQL


def take_until_spent(url: str, destination: str, limit: int) -> int:
    """One process's share of a window: claim until the store says it is spent."""
    engine = create_engine(normalise_url(url))
    windows = PostgresWindows(engine, destination)
    budget = RateBudget({"users.track": BucketLimit(limit, 3600)}, counter=windows, shared=True,
                        clock=lambda: EPOCH)  # fmt: skip
    taken = 0

    async def spend() -> None:
        nonlocal taken
        while await budget._try_take_shared("users.track") == 0:
            taken += 1

    asyncio.run(spend())
    engine.dispose()
    return taken


def test_two_processes_on_postgresql_share_one_budget(pg_url):
    open_state(pg_url).dispose()  # creates rate_budgets
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=context) as pool:
        shares = list(pool.map(take_until_spent, [pg_url] * 2, ["dest#1"] * 2, [500] * 2))

    assert sum(shares) == 500  # together exactly the limit: nothing lost, nothing over


@pytest.mark.anyio
async def test_two_clients_on_postgresql_stay_within_one_limit_together(pg_url):
    engine = open_state(pg_url)
    clock = FakeTime()
    limit = BucketLimit(3, 600)  # four windows fit in the two hours of rows kept
    sink = TrackSink()
    try:
        with running(sink) as url:
            destination = destination_key(url, KEY)
            clients = [
                BrazeClient(url, KEY, governor=RateGovernor(), max_concurrency=4, http="httpx",
                            budget=RateBudget({"users.track": limit}, shared=True,
                                              counter=PostgresWindows(engine, destination),
                                              clock=clock.time, sleep=clock.sleep))
                for _ in range(2)
            ]  # fmt: skip
            await asyncio.gather(*(c.track(items(75 * 6)) for c in clients))
            for client in clients:
                await client.aclose()
        with engine.connect() as conn:
            used = [row.used for row in conn.execute(select(rate_budgets))]
    finally:
        engine.dispose()

    assert sink.stats.track_requests == 12
    assert sum(used) == 12  # every request took its slot from the one shared count
    assert max(used) <= 3  # one budget for both, not one each
    # Four windows when the two clients pack them fully; the order their answers arrive in
    # (real sockets) may leave a slot of a window's tail unused, and a fifth takes the rest.
    assert len(used) in (4, 5)


def test_a_budget_claims_the_tail_of_a_window_one_slot_at_a_time(pg_url):
    engine = open_state(pg_url)
    try:
        windows = PostgresWindows(engine, "dest#tail")
        assert windows.take("users.track", EPOCH, 10, 8) == 8
        assert windows.take("users.track", EPOCH, 10, 8) == 1  # 2 left: one at a time
        assert windows.take("users.track", EPOCH, 10, 8) == 1
        assert windows.take("users.track", EPOCH, 10, 8) == 0
        assert windows.take("users.track", EPOCH + 3600, 10, 8) == 8  # a new window
    finally:
        engine.dispose()


def test_sqlite_state_keeps_budgets_in_the_process(tmp_path):
    engine = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        assert window_counter(engine, "dest#1") is None
    finally:
        engine.dispose()
    assert shared_budget("http://127.0.0.1:9", "sqlite-key").shared is False
    assert isinstance(MemoryWindows(), MemoryWindows)


def test_one_budget_serves_clients_on_several_event_loops(pg_url):
    """A scheduled sync may run on its own thread and loop beside serve's delivery."""
    engine = open_state(pg_url)
    budget = RateBudget({"users.track": BucketLimit(300, 3600)}, shared=True,
                        counter=PostgresWindows(engine, "dest#loops"), clock=lambda: EPOCH)  # fmt: skip
    taken: list[int] = []

    def spend_on_a_loop_of_its_own() -> None:
        async def spend() -> int:
            count = 0
            while await budget._try_take_shared("users.track") == 0:
                count += 1
            return count

        taken.append(asyncio.run(spend()))

    threads = [threading.Thread(target=spend_on_a_loop_of_its_own) for _ in range(3)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        engine.dispose()
    assert len(taken) == 3 and sum(taken) == 300
