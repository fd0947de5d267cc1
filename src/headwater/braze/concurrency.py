"""How many requests a client keeps in flight: found by the client itself, AIMD-style.

Saturating Braze takes about rate x round trip requests in flight (1,000 requests/s x
100 ms = 100), which nobody should have to compute and which changes with the network.
So the limit starts small and grows while answers come back fast and the budget has room
(doubling per round trip at first, then a fixed step per round trip), and halves on a 429,
a 5xx, a dropped connection or round trips rising well above their usual level: the way
TCP finds a link's capacity. ``max_concurrency`` is only the ceiling.

"Usual" is a slow moving average, not the best round trip ever seen: on a busy network (or
a busy machine) round trips vary by half their length from one request to the next, and
a limit cut for noise takes many round trips to win back. A queue building up shows as
the fast average running to twice the slow one.

One cut per round trip: the answers of requests sent before a cut say nothing new about
the cut limit, so they cannot cut it again (a wave of 429s halves once, not fifty times).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

__all__ = ["AdaptiveConcurrency"]

INITIAL_CONCURRENCY = 8
# The recent round trip this many times the usual one means a queue is building.
LATENCY_RISE_FACTOR = 2.0
# ...and at least this much slower (in seconds): a 1 ms round trip doubling is noise.
LATENCY_RISE_MIN_SECONDS = 0.05
RECENT_SMOOTHING = 0.1  # weight of each round trip in the recent average
USUAL_SMOOTHING = 0.005  # ...and in the usual one (a few hundred round trips)
# Growth after the first cut: this share of the ceiling per round trip (at least one).
GROWTH_SHARE_OF_CEILING = 0.02


class AdaptiveConcurrency:
    """A limit on requests in flight between ``floor`` and ``ceiling``, adjusted by the
    answers. Single event loop: state changes only between ``await`` points."""

    def __init__(
        self,
        ceiling: int,
        *,
        initial: int = INITIAL_CONCURRENCY,
        floor: int = 1,
        adaptive: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ceiling < 1:
            raise ValueError("the concurrency ceiling must be at least 1")
        self.ceiling = ceiling
        self.floor = min(floor, ceiling)
        self.adaptive = adaptive
        self.limit = float(min(max(initial, self.floor), ceiling) if adaptive else ceiling)
        self.in_flight = 0
        self.peak = int(self.limit)  # highest limit reached; for reports and benchmarks
        self.cuts = 0
        self._slow_start = True
        self._clock = clock
        self._last_cut = float("-inf")
        self._recent: float | None = None
        self._usual: float | None = None
        self._step = max(1.0, ceiling * GROWTH_SHARE_OF_CEILING)
        self._changed = asyncio.Condition()

    def __repr__(self) -> str:
        return f"AdaptiveConcurrency(limit={int(self.limit)}, ceiling={self.ceiling})"

    @property
    def current(self) -> int:
        return max(self.floor, int(self.limit))

    async def acquire(self) -> float:
        """Wait for room; returns the time the request starts (for ``observe``)."""
        if self.in_flight >= self.current:
            async with self._changed:
                await self._changed.wait_for(lambda: self.in_flight < self.current)
        self.in_flight += 1
        return self._clock()

    async def release(self) -> None:
        self.in_flight -= 1
        async with self._changed:
            self._changed.notify(max(1, self.current - self.in_flight))

    def observe(
        self, started: float, *, status: int | None, latency: float, budget_bound: bool
    ) -> None:
        """Learn from one answer (``status`` None: no answer at all). ``budget_bound``:
        the request had to wait for the rate budget, so more in flight would not help."""
        if not self.adaptive:
            return
        if status is None or status == 429 or status >= 500:
            self._cut(started)
            return
        rose = self._learn_latency(latency)
        if rose:
            self._cut(started)
        elif not budget_bound:
            self._grow()

    def _learn_latency(self, latency: float) -> bool:
        if self._recent is None or self._usual is None:
            self._recent = self._usual = latency
            return False
        self._recent += RECENT_SMOOTHING * (latency - self._recent)
        self._usual += USUAL_SMOOTHING * (latency - self._usual)
        return (
            self._recent > self._usual * LATENCY_RISE_FACTOR
            and self._recent - self._usual > LATENCY_RISE_MIN_SECONDS
        )

    def _grow(self) -> None:
        # Per answer: slow start doubles the limit per round trip, then `step` per round trip.
        step = 1.0 if self._slow_start else self._step / max(self.limit, 1.0)
        self.limit = min(float(self.ceiling), self.limit + step)
        self.peak = max(self.peak, int(self.limit))

    def _cut(self, started: float) -> None:
        if started <= self._last_cut:
            return  # sent before the last cut: already accounted for
        self._last_cut = self._clock()
        self._slow_start = False
        self.cuts += 1
        self.limit = max(float(self.floor), self.limit / 2)
        if self._recent is not None:
            # Measure afresh from the usual level: the queue drains as the limit drops.
            self._recent = self._usual
