"""The stop plan: by when work hands back after a signal, and what a second signal does."""

from __future__ import annotations

import signal

import uvicorn

from headwater.server.lifecycle import GracefulServer, Shutdown


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_work_hands_back_before_the_bound_keeping_time_to_close():
    clock = Clock()
    plan = Shutdown(25.0, clock=clock)
    assert not plan.stopping
    plan.begin()
    clock.now += 7
    plan.begin()  # a later call keeps the first signal's time
    assert plan.stopping
    assert plan.work_deadline() == 1000.0 + 25.0 - 3.0
    assert plan.http_drain_seconds == 12.5
    short = Shutdown(2.0, clock=clock)
    short.begin()
    assert short.work_deadline() == clock.now + 2.0 - 0.5  # a quarter kept when the bound is short


def test_a_second_signal_hurries_instead_of_skipping_the_hand_back():
    clock = Clock()
    plan = Shutdown(3600.0, clock=clock)
    server = GracefulServer(uvicorn.Config(app=None), plan)
    try:
        server.handle_exit(signal.SIGTERM, None)
        assert server.should_exit and plan.stopping and not plan.hurried
        clock.now += 1
        server.handle_exit(signal.SIGINT, None)
        assert plan.hurried
        assert not server.force_exit  # uvicorn's force exit would skip the app's shutdown
        assert plan.work_deadline() == clock.now
    finally:
        server._watchdog.cancel()
