"""A rate-limit governor shared by every request to one Braze workspace.

Braze counts requests per endpoint bucket in fixed windows and tells us where we stand on
every response (``X-RateLimit-Limit``/``-Remaining``/``-Reset``). Rather than discovering
the limit by collecting 429s, every request asks the governor for a slot first: the governor
lets requests through at full speed while the budget is comfortable, spreads the last few
requests of a window evenly up to its reset, and holds *everyone* back until the reset once
the budget is spent or Braze answered 429. One governor per destination (base URL + key)
is shared by all clients in the process, so two syncs to the same workspace do not fight.

Single event loop, no locks: state only changes between ``await`` points.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from headwater.braze.retry import EPOCH_THRESHOLD_SECONDS, retry_after_seconds

# Below this share of the window's limit, requests are spread evenly until the reset.
SLOW_DOWN_FRACTION = 0.1
# Wait this long when the budget is spent but Braze gave no reset time.
UNKNOWN_RESET_WAIT_SECONDS = 1.0
# Never trust a reset further away than this (a clock skew or a garbage header).
MAX_RESET_SECONDS = 3600.0

__all__ = ["RateGovernor", "shared_governor"]


@dataclass(slots=True)
class BucketState:
    """What we know about one rate bucket's current window (monotonic times)."""

    limit: int | None = None
    remaining: int | None = None
    reset_at: float | None = None
    paused_until: float = 0.0
    next_slot: float = 0.0
    in_flight: int = 0  # slots handed out whose response has not been observed yet
    waits: int = 0  # how many times a request had to wait; for reports and tests


class RateGovernor:
    """Hands out request slots per rate bucket, fed by Braze's rate-limit headers."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        slow_down_fraction: float = SLOW_DOWN_FRACTION,
    ) -> None:
        self._clock = clock
        self._wall = wall_clock
        self._sleep = sleep
        self._slow_down_fraction = slow_down_fraction
        self._buckets: dict[str, BucketState] = {}

    def __repr__(self) -> str:
        return f"RateGovernor(buckets={sorted(self._buckets)})"

    def state(self, bucket: str) -> BucketState:
        state = self._buckets.get(bucket)
        if state is None:
            state = self._buckets[bucket] = BucketState()
        return state

    def delay(self, bucket: str) -> float:
        """Seconds the next request in ``bucket`` must wait; 0 means go now."""
        state = self.state(bucket)
        now = self._clock()
        if state.reset_at is not None and now >= state.reset_at:
            # A new window: the next response tells us the new budget.
            state.remaining = None
            state.reset_at = None
        if state.paused_until > now:
            return state.paused_until - now
        if state.remaining is None or state.limit is None:
            return 0.0
        if state.remaining <= 0:
            if state.reset_at is None:
                return UNKNOWN_RESET_WAIT_SECONDS
            return state.reset_at - now
        if state.reset_at is not None and state.remaining < state.limit * self._slow_down_fraction:
            return max(0.0, state.next_slot - now)
        return 0.0

    async def acquire(self, bucket: str) -> float:
        """Wait until a request in ``bucket`` may be sent, and count it against the budget;
        returns the seconds waited."""
        waited = 0.0
        while True:
            wait = self.delay(bucket)
            if wait <= 0:
                break
            self.state(bucket).waits += 1
            waited += wait
            await self._sleep(wait)
        state = self.state(bucket)
        now = self._clock()
        if state.remaining is not None:
            if (
                state.reset_at is not None
                and state.limit is not None
                and state.remaining < state.limit * self._slow_down_fraction
            ):
                interval = max(0.0, state.reset_at - now) / max(state.remaining, 1)
                state.next_slot = max(now, state.next_slot) + interval
            state.remaining -= 1
        state.in_flight += 1
        return waited

    def release(self, bucket: str) -> None:
        """A request that got no response (timeout, dropped connection) is no longer in flight."""
        state = self.state(bucket)
        state.in_flight = max(0, state.in_flight - 1)

    def observe(self, bucket: str, status: int, headers: Mapping[str, str]) -> float | None:
        """Learn from one response; returns the pause applied after a 429 (seconds), if any.

        ``headers`` must be case-insensitive (httpx.Headers) or use lower-case names.
        """
        state = self.state(bucket)
        state.in_flight = max(0, state.in_flight - 1)
        now = self._clock()
        wall = self._wall()
        limit = _int(headers.get("x-ratelimit-limit"))
        remaining = _int(headers.get("x-ratelimit-remaining"))
        if remaining is not None:
            # Braze counted this request, not the ones still on their way: assume they land.
            remaining = max(0, remaining - state.in_flight)
        reset_in = _reset_seconds(headers.get("x-ratelimit-reset"), wall)
        if limit is not None:
            state.limit = limit
        if reset_in is not None:
            new_reset = now + reset_in
            new_window = state.reset_at is None or new_reset > state.reset_at + 0.5
            state.reset_at = new_reset
            if remaining is not None:
                if new_window or state.remaining is None:
                    state.remaining = remaining
                else:
                    # Responses come back out of order: keep the lower, more cautious count.
                    state.remaining = min(state.remaining, remaining)
        elif remaining is not None:
            state.remaining = (
                remaining if state.remaining is None else min(state.remaining, remaining)
            )
        if status != 429:
            return None
        pause = retry_after_seconds(headers, wall)
        if pause is None:
            pause = UNKNOWN_RESET_WAIT_SECONDS
        pause = min(pause, MAX_RESET_SECONDS)
        state.paused_until = max(state.paused_until, now + pause)
        state.remaining = 0
        if state.reset_at is None or state.reset_at < now + pause:
            state.reset_at = now + pause
        return pause


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


def _reset_seconds(value: str | None, now_epoch: float) -> float | None:
    """``X-RateLimit-Reset`` as seconds from now; epoch seconds or seconds remaining."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    if number != number or number < 0:
        return None
    if number >= EPOCH_THRESHOLD_SECONDS:
        number = number - now_epoch
    return min(max(0.0, number), MAX_RESET_SECONDS)


_SHARED: dict[tuple[str, str], RateGovernor] = {}


def shared_governor(base_url: str, api_key: str) -> RateGovernor:
    """The process-wide governor for one workspace (base URL + key; keys are hashed)."""
    digest = hashlib.sha256(api_key.encode()).hexdigest()[:16]
    key = (base_url.rstrip("/").lower(), digest)
    governor = _SHARED.get(key)
    if governor is None:
        governor = _SHARED[key] = RateGovernor()
    return governor
