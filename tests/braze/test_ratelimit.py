"""The shared rate governor: slows down near the end of the budget, pauses until Reset."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from headwater.braze.ratelimit import RateGovernor, shared_governor

EPOCH = 1_700_000_000.0


class FakeTime:
    """A clock that only moves when the governor sleeps, so timing is exact."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return EPOCH + self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime()


@pytest.fixture
def governor(clock: FakeTime) -> RateGovernor:
    return RateGovernor(clock=clock.monotonic, wall_clock=clock.wall, sleep=clock.sleep)


def headers(limit: int, remaining: int, reset: float) -> httpx.Headers:
    return httpx.Headers(
        {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(remaining),
         "X-RateLimit-Reset": str(reset)}
    )  # fmt: skip


@pytest.mark.anyio
async def test_requests_go_at_full_speed_while_the_budget_is_comfortable(governor, clock):
    governor.observe("users.track", 201, headers(3000, 2500, EPOCH + 3))
    for _ in range(100):
        await governor.acquire("users.track")
    assert clock.slept == []


@pytest.mark.anyio
async def test_the_last_requests_of_a_window_are_spread_until_the_reset(governor, clock):
    governor.observe("users.track", 201, headers(100, 5, EPOCH + 5))
    for _ in range(5):
        await governor.acquire("users.track")
    # Five requests spread over the five seconds left instead of five at once.
    assert 3.0 <= clock.now <= 5.0


@pytest.mark.anyio
async def test_a_spent_budget_pauses_until_the_epoch_reset(governor, clock):
    governor.observe("users.track", 201, headers(100, 0, EPOCH + 2))
    await governor.acquire("users.track")
    assert clock.now == pytest.approx(2.0)


@pytest.mark.anyio
async def test_reset_given_as_seconds_remaining_is_understood(governor, clock):
    governor.observe("users.track", 201, headers(100, 0, 4))
    await governor.acquire("users.track")
    assert clock.now == pytest.approx(4.0)


@pytest.mark.anyio
async def test_a_429_pauses_every_request_until_its_retry_after(governor, clock):
    pause = governor.observe("users.track", 429, httpx.Headers({"X-Ratelimit-Retry-After": "6"}))
    assert pause == 6
    await asyncio.gather(*(governor.acquire("users.track") for _ in range(10)))
    assert clock.now >= 6.0


@pytest.mark.anyio
async def test_buckets_are_independent(governor, clock):
    governor.observe("users.track", 429, httpx.Headers({"Retry-After": "30"}))
    await governor.acquire("users.export.ids")
    assert clock.now == 0.0


@pytest.mark.anyio
async def test_out_of_order_responses_keep_the_more_cautious_count(governor, clock):
    governor.observe("users.track", 201, headers(100, 4, EPOCH + 3))
    governor.observe("users.track", 201, headers(100, 50, EPOCH + 3))  # older answer
    assert governor.state("users.track").remaining == 4


def test_clients_to_the_same_workspace_share_one_governor():
    a = shared_governor("http://braze.example/", "key-one")
    assert shared_governor("http://BRAZE.example", "key-one") is a
    assert shared_governor("http://braze.example", "key-two") is not a
    assert "key-one" not in repr(a)
