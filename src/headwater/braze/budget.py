"""One rate budget per destination: requests allowed per Braze rate bucket and window.

Braze counts requests per bucket (``users.track``, ``users.export.ids``, ``users.identity``
... see ``endpoints.py``) in fixed windows that reset on the clock boundary. The budget
counts the same way, *before* a request leaves, so the limit a destination states is the
most that is ever sent: the governor in ``ratelimit.py`` then only has to handle what Braze
says on top (another client spending the same workspace's budget, a smaller contract).

Every ``BrazeClient`` of one destination in a process gets the same budget from
``shared_budget`` (syncs, schedules, the gateway's delivery and its passthrough alike).
Several processes share it when their counts live in the state store: a ``WindowCounter``
backed by PostgreSQL (``headwater.state.budgets``) grants slots with one atomic upsert per
handful of requests. Without one, the count is this process's own.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from headwater.braze.endpoints import ENDPOINTS

__all__ = [
    "BucketLimit",
    "MemoryWindows",
    "RateBudget",
    "WindowCounter",
    "check_rate_limits",
    "default_limits",
    "destination_key",
    "limits_from",
    "rate_buckets",
    "shared_budget",
]

# A shared counter is asked for this share of a window's limit at once (at most
# MAX_SLOTS_PER_CLAIM), so a busy destination costs a few store round trips per second.
CLAIM_FRACTION = 0.01
MAX_SLOTS_PER_CLAIM = 25


@dataclass(frozen=True, slots=True)
class BucketLimit:
    """Requests allowed per fixed window of ``window_seconds``."""

    limit: int
    window_seconds: float

    def __post_init__(self) -> None:
        if self.limit < 1 or not self.window_seconds > 0:
            raise ValueError("a rate limit needs limit >= 1 and window_seconds > 0")

    @property
    def per_second(self) -> float:
        return self.limit / self.window_seconds


def default_limits() -> dict[str, BucketLimit]:
    """Braze's documented budget of every rate bucket (endpoints sharing one agree)."""
    limits: dict[str, BucketLimit] = {}
    for endpoint in ENDPOINTS.values():
        limits.setdefault(
            endpoint.rate_bucket, BucketLimit(endpoint.rate_limit, endpoint.rate_window_seconds)
        )
    return limits


def rate_buckets() -> tuple[str, ...]:
    """The bucket names a destination's ``rate_limits`` may set."""
    return tuple(sorted(default_limits()))


class WindowCounter(Protocol):
    """Where a budget's counts live: grant up to ``wanted`` of ``limit`` slots in a window."""

    scope: str  # which store: budgets of one destination in different stores are apart

    def take(self, bucket: str, window_start: float, limit: int, wanted: int) -> int:
        """Count and return the slots granted (0 when the window is spent)."""
        ...


class MemoryWindows:
    """Counts in this process's memory: enough when nothing else sends for the destination."""

    scope = ""

    def __init__(self) -> None:
        self._used: dict[str, tuple[float, int]] = {}  # bucket -> (window start, used)
        self._lock = threading.Lock()  # syncs may run on their own threads and loops

    def take(self, bucket: str, window_start: float, limit: int, wanted: int) -> int:
        with self._lock:
            start, used = self._used.get(bucket, (window_start, 0))
            if start != window_start:
                used = 0
            granted = max(0, min(wanted, limit - used))
            self._used[bucket] = (window_start, used + granted)
            return granted

    def used(self, bucket: str, window_start: float) -> int:
        start, used = self._used.get(bucket, (window_start, 0))
        return used if start == window_start else 0


class RateBudget:
    """Hands out request slots per rate bucket within fixed, clock-aligned windows.

    ``limits`` overrides Braze's defaults per bucket (a contract with more or less).
    ``clock`` is wall time: windows start on multiples of their length since the epoch, as
    Braze's do, so every process agrees where a window starts.
    """

    def __init__(
        self,
        limits: Mapping[str, BucketLimit] | None = None,
        *,
        counter: WindowCounter | None = None,
        shared: bool = False,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._limits = default_limits()
        self.configure(limits)
        self._counter: WindowCounter = counter or MemoryWindows()
        self.shared = shared  # True when the counter is a store other processes use too
        self._clock = clock
        self._sleep = sleep
        self._held: dict[str, tuple[float, int]] = {}  # slots claimed from a shared counter
        # A thread lock, not an asyncio one: the clients of one destination may run on
        # several event loops (a scheduled sync on its own thread beside serve's loop).
        self._lock = threading.Lock()
        self.waits = 0  # requests that had to wait for a window; for reports and tests

    def __repr__(self) -> str:
        return f"RateBudget(shared={self.shared}, buckets={len(self._limits)})"

    def configure(self, limits: Mapping[str, BucketLimit] | None) -> None:
        """Apply a destination's ``rate_limits`` over Braze's defaults (None: leave as is).
        Unknown buckets are refused."""
        if limits is None:
            return
        merged = default_limits()
        for bucket, limit in limits.items():
            if bucket not in merged:
                raise ValueError(f"unknown rate bucket {bucket!r}")
            merged[bucket] = limit
        self._limits = merged

    def limit(self, bucket: str) -> BucketLimit:
        return self._limits.get(bucket) or self._limits["default"]

    def used(self, bucket: str) -> int | None:
        """Requests counted in the current window by this process (None when the count
        lives in a shared store); for tests and reports."""
        if not isinstance(self._counter, MemoryWindows):
            return None
        return self._counter.used(bucket, self.window_start(bucket))

    def window_start(self, bucket: str, now: float | None = None) -> float:
        window = self.limit(bucket).window_seconds
        now = self._clock() if now is None else now
        return math.floor(now / window) * window

    def try_take(self, bucket: str) -> float:
        """Take a slot now if the window has one (returns 0), else the seconds until the
        next window starts. Never blocks; for a counter that answers at once."""
        limit = self.limit(bucket)
        now = self._clock()
        start = math.floor(now / limit.window_seconds) * limit.window_seconds
        if self._counter.take(bucket, start, limit.limit, 1):
            return 0.0
        return max(start + limit.window_seconds - now, 1e-3)

    async def acquire(self, bucket: str) -> float:
        """Wait for a slot in ``bucket``; returns the seconds waited (0: budget had room)."""
        waited = 0.0
        while True:
            if self.shared:
                wait = await self._try_take_shared(bucket)
            else:
                wait = self.try_take(bucket)
            if wait <= 0:
                return waited
            self.waits += 1
            waited += wait
            await self._sleep(wait)

    async def _try_take_shared(self, bucket: str) -> float:
        if self._take_held(bucket, self.window_start(bucket)):
            return 0.0
        return await asyncio.to_thread(self._claim_shared, bucket)

    def _claim_shared(self, bucket: str) -> float:
        """One claim at a time per budget (on a worker thread: the store is a database):
        a request that waited for the lock first uses what the claim before it brought."""
        limit = self.limit(bucket)
        with self._lock:
            now = self._clock()
            start = math.floor(now / limit.window_seconds) * limit.window_seconds
            held_start, held = self._held.get(bucket, (start, 0))
            if held_start == start and held > 0:
                self._held[bucket] = (start, held - 1)
                return 0.0
            granted = self._counter.take(bucket, start, limit.limit, self._claim_size(limit))
            if granted:
                self._held[bucket] = (start, granted - 1)
                return 0.0
        return max(start + limit.window_seconds - self._clock(), 1e-3)

    def _take_held(self, bucket: str, start: float) -> bool:
        with self._lock:
            held_start, held = self._held.get(bucket, (start, 0))
            if held_start == start and held > 0:
                self._held[bucket] = (start, held - 1)
                return True
            return False

    def _claim_size(self, limit: BucketLimit) -> int:
        return max(1, min(MAX_SLOTS_PER_CLAIM, int(limit.limit * CLAIM_FRACTION)))


def destination_key(url: str, api_key: str) -> str:
    """One destination, however many clients: the base URL and a digest of the key."""
    digest = hashlib.sha256(api_key.encode()).hexdigest()[:16]
    return f"{url.rstrip('/').lower()}#{digest}"


_REGISTRY: dict[tuple[str, str], RateBudget] = {}


def shared_budget(
    url: str,
    api_key: str,
    limits: Mapping[str, BucketLimit] | None = None,
    *,
    counter: WindowCounter | None = None,
) -> RateBudget:
    """The process-wide budget of one destination (per state store), created on first use.

    ``limits`` (the destination's ``rate_limits``) replace what a previous caller set.
    ``counter`` is the state store's shared count (None: this process's memory); the
    syncs, schedules and delivery of one process all pass the same store, so they share
    one budget object, and through the store, one count with other processes."""
    key = (destination_key(url, api_key), getattr(counter, "scope", ""))
    budget = _REGISTRY.get(key)
    if budget is None:
        budget = _REGISTRY[key] = RateBudget(limits, counter=counter, shared=counter is not None)
    else:
        budget.configure(limits)
    return budget


def limits_from(overrides: Mapping[str, object] | None) -> dict[str, BucketLimit]:
    """A destination's ``rate_limits`` (objects or dicts with ``limit``/``window_seconds``)
    as the budget's limits."""
    limits = {}
    for bucket, spec in (overrides or {}).items():
        if isinstance(spec, Mapping):
            limit, window = spec["limit"], spec["window_seconds"]
        else:
            limit, window = spec.limit, spec.window_seconds  # type: ignore[attr-defined]
        limits[bucket] = BucketLimit(int(limit), float(window))
    return limits


def check_rate_limits(raw: dict, report: Callable[[tuple, str], None]) -> None:
    """A project-file check: every ``destinations.<name>.rate_limits`` key is a rate bucket
    (an endpoint's name points to the bucket it shares)."""
    buckets = rate_buckets()
    bucket_of = {e.name: e.rate_bucket for e in ENDPOINTS.values()}
    destinations = raw.get("destinations")
    if not isinstance(destinations, dict):
        return
    for name, dest in destinations.items():
        limits = dest.get("rate_limits") if isinstance(dest, dict) else None
        if not isinstance(limits, dict):
            continue
        for bucket in limits:
            if bucket in buckets:
                continue
            loc = ("destinations", name, "rate_limits", bucket)
            if bucket in bucket_of:
                report(loc, f"{bucket} shares the rate bucket {bucket_of[bucket]!r}; set that")
            else:
                report(loc, f"unknown rate bucket {bucket!r} (buckets: {', '.join(buckets)})")
