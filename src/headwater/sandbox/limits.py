"""Braze's rate limits: fixed windows per endpoint bucket that reset on the clock
boundary, with ``X-RateLimit-*`` headers on every answer and 429 when a window is spent."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from headwater.braze.endpoints import ENDPOINTS, Endpoint
from headwater.sandbox.settings import RateBudget


@dataclass
class Window:
    start: float
    used: int = 0


class RateLimiter:
    """Windows on ``clock`` (wall time: the reset header is an epoch second); tests pass a
    clock they step, so a window passes when the test says, not when the machine does."""

    def __init__(
        self,
        overrides: dict[str, RateBudget] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self.budgets: dict[str, RateBudget] = {
            e.rate_bucket: RateBudget(e.rate_limit, e.rate_window_seconds)
            for e in ENDPOINTS.values()
        }
        self.budgets.update(overrides or {})
        self.windows: dict[str, Window] = {}

    def set_budget(self, bucket: str, limit: int, window_seconds: float) -> None:
        if limit < 1 or not 0 < window_seconds < math.inf:
            raise ValueError("limit must be >= 1 and window_seconds > 0")
        self.budgets[bucket] = RateBudget(limit, window_seconds)
        self.windows.pop(bucket, None)

    def peek(self, endpoint: Endpoint, now: float | None = None) -> dict[str, str]:
        """The headers for an answer that spends nothing (401, 403, 413): Braze sends
        ``X-RateLimit-*`` on every answer."""
        return self.take(endpoint, now, spend=False)[1]

    def take(
        self, endpoint: Endpoint, now: float | None = None, *, spend: bool = True
    ) -> tuple[bool, dict[str, str]]:
        """Spend one request from the endpoint's bucket; return (allowed, headers)."""
        now = self.clock() if now is None else now
        budget = self.budgets[endpoint.rate_bucket]
        start = math.floor(now / budget.window_seconds) * budget.window_seconds
        window = self.windows.get(endpoint.rate_bucket)
        if window is None or window.start != start:
            window = self.windows[endpoint.rate_bucket] = Window(start)
        allowed = window.used < budget.limit
        if allowed and spend:
            window.used += 1
        headers = {
            "X-RateLimit-Limit": str(budget.limit),
            "X-RateLimit-Remaining": str(max(budget.limit - window.used, 0)),
            "X-RateLimit-Reset": str(math.ceil(start + budget.window_seconds)),
        }
        return allowed, headers
