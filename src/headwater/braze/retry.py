"""When to retry a Braze call and how long to wait first: pure functions, no sleeping.

Braze asks clients to retry 429 and 5xx with exponential backoff. We use *full jitter*
(a uniform draw between 0 and the exponential cap) because many workers that failed at the
same moment would otherwise come back at the same moment and fail again. A server hint
(``Retry-After``, ``X-Ratelimit-Retry-After``) is a floor: waiting less is pointless.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import httpx

from headwater.braze.errors import is_retriable_status

RETRY_BASE_SECONDS = 0.5
RETRY_CAP_SECONDS = 30.0
DEFAULT_MAX_ATTEMPTS = 6
# Spread added on top of a server's Retry-After so a pool of workers does not stampede.
RETRY_AFTER_SPREAD_SECONDS = 0.25
# Beyond this a Retry-After/Reset value is taken as an epoch timestamp, not a duration.
EPOCH_THRESHOLD_SECONDS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Backoff:
    """The backoff schedule: attempt n waits up to ``base * 2**(n-1)``, capped."""

    base_seconds: float = RETRY_BASE_SECONDS
    cap_seconds: float = RETRY_CAP_SECONDS
    retry_after_spread_seconds: float = RETRY_AFTER_SPREAD_SECONDS


def backoff_seconds(
    attempt: int,
    backoff: Backoff = Backoff(),
    *,
    retry_after: float | None = None,
    rng: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based).

    Without a hint: full jitter, ``uniform(0, min(cap, base * 2**(attempt-1)))``.
    With a hint: the hint plus a small random spread, never less than the hint (the hint may
    exceed the cap: Braze knows better than we do when the window resets).
    """
    if attempt < 1:
        raise ValueError("attempt is 1-based")
    if retry_after is not None and retry_after >= 0:
        return retry_after + rng() * backoff.retry_after_spread_seconds
    ceiling = min(backoff.cap_seconds, backoff.base_seconds * 2 ** min(attempt - 1, 62))
    return rng() * ceiling


def should_retry_status(status: int) -> bool:
    """429, 408 and 5xx are transient; every other 4xx will fail the same way again."""
    return is_retriable_status(status)


def should_retry_exception(exc: BaseException) -> bool:
    """Timeouts, refused or dropped connections, broken responses: all worth another try."""
    return isinstance(exc, httpx.TransportError)


def _seconds(value: str | None, now_epoch: float) -> float | None:
    """A header value as seconds from now: a duration, an epoch timestamp or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    try:
        number = float(value)
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - now_epoch)
        except (TypeError, ValueError, IndexError):
            return None
    if number != number or number < 0:  # NaN or negative: meaningless
        return None
    if number >= EPOCH_THRESHOLD_SECONDS:
        return max(0.0, number - now_epoch)
    return number


def retry_after_seconds(headers: Mapping[str, str], now_epoch: float) -> float | None:
    """Braze's own hint of when to come back, from a 429 (or 503) response's headers.

    MAU-priced accounts send ``X-Ratelimit-Retry-After`` (seconds); others send
    ``X-RateLimit-Reset`` (epoch seconds, or seconds remaining on some accounts); plain
    ``Retry-After`` (seconds or an HTTP date) is honoured too.
    """
    for name in ("x-ratelimit-retry-after", "retry-after", "x-ratelimit-reset"):
        seconds = _seconds(headers.get(name), now_epoch)
        if seconds is not None:
            return seconds
    return None
