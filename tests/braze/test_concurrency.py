"""Adaptive concurrency: grows while answers are fast and the budget has room, halves once
per round trip on 429, 5xx, dropped connections or a rising round trip, never passes the
ceiling. Driven by a fake clock and made-up answers: nothing here depends on speed."""

from __future__ import annotations

import pytest

from headwater.braze.concurrency import AdaptiveConcurrency


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def fast_answers(limiter: AdaptiveConcurrency, clock: Clock, count: int, **kw) -> None:
    for _ in range(count):
        limiter.observe(clock.now, status=201, latency=0.1, **{"budget_bound": False, **kw})
        clock.now += 0.001


def test_it_starts_small_and_doubles_each_round_trip_up_to_the_ceiling():
    clock = Clock()
    limiter = AdaptiveConcurrency(200, initial=8, clock=clock)
    assert limiter.current == 8
    fast_answers(limiter, clock, 8)  # one round trip's answers
    assert limiter.current == 16
    fast_answers(limiter, clock, 500)
    assert limiter.current == 200  # the ceiling, never above
    assert limiter.peak == 200


def test_a_wave_of_429s_halves_once_then_growth_is_additive():
    clock = Clock()
    limiter = AdaptiveConcurrency(200, initial=64, clock=clock)
    sent = clock.now
    clock.now += 0.1
    for _ in range(50):  # every request of the wave, sent before the first answer came
        limiter.observe(sent, status=429, latency=0.1, budget_bound=False)
    assert limiter.current == 32
    assert limiter.cuts == 1
    fast_answers(limiter, clock, 32)  # one round trip after slow start ended: +1
    assert limiter.limit == pytest.approx(36, abs=0.3)  # 2 % of the ceiling per round trip


@pytest.mark.parametrize("status", [500, 503, None])
def test_server_errors_and_dropped_connections_halve(status):
    clock = Clock()
    limiter = AdaptiveConcurrency(200, initial=40, clock=clock)
    limiter.observe(clock.now + 1, status=status, latency=0.0, budget_bound=False)
    assert limiter.current == 20


def test_no_growth_while_the_budget_is_what_holds_requests_back():
    clock = Clock()
    limiter = AdaptiveConcurrency(200, initial=8, clock=clock)
    fast_answers(limiter, clock, 100, budget_bound=True)
    assert limiter.current == 8


def test_round_trips_rising_to_twice_their_usual_level_halve():
    clock = Clock()
    limiter = AdaptiveConcurrency(200, initial=100, clock=clock)
    fast_answers(limiter, clock, 100, budget_bound=True)  # usual: 100 ms
    before = limiter.current
    for _ in range(30):
        clock.now += 0.01
        limiter.observe(clock.now, status=201, latency=0.5, budget_bound=False)
    assert limiter.current <= before // 2 + 1


def test_noisy_round_trips_do_not_cut():
    clock = Clock()
    limiter = AdaptiveConcurrency(200, initial=8, clock=clock)
    for i in range(2000):  # 100 to 250 ms, as on a busy network
        clock.now += 0.001
        latency = (0.1, 0.25, 0.16, 0.12, 0.2)[i % 5]
        limiter.observe(clock.now, status=201, latency=latency, budget_bound=False)
    assert limiter.cuts == 0
    assert limiter.current == 200


def test_fixed_concurrency_when_not_adaptive():
    clock = Clock()
    limiter = AdaptiveConcurrency(4, adaptive=False, clock=clock)
    limiter.observe(clock.now + 1, status=429, latency=0.1, budget_bound=False)
    assert limiter.current == 4
