"""The backoff schedule: exponential, full jitter, capped, and Braze's hints honoured."""

from __future__ import annotations

import email.utils

import httpx
import pytest

from headwater.braze.retry import (
    Backoff,
    backoff_seconds,
    retry_after_seconds,
    should_retry_exception,
    should_retry_status,
)

SCHEDULE = Backoff(base_seconds=0.5, cap_seconds=8.0, retry_after_spread_seconds=0.25)


def test_backoff_grows_exponentially_up_to_the_cap():
    ceilings = [backoff_seconds(n, SCHEDULE, rng=lambda: 1.0) for n in range(1, 8)]
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_backoff_uses_full_jitter_between_zero_and_the_ceiling():
    assert backoff_seconds(3, SCHEDULE, rng=lambda: 0.0) == 0.0
    assert backoff_seconds(3, SCHEDULE, rng=lambda: 0.5) == 1.0


def test_a_retry_after_hint_is_a_floor_even_above_the_cap():
    assert backoff_seconds(1, SCHEDULE, retry_after=20.0, rng=lambda: 0.0) == 20.0
    assert 20.0 <= backoff_seconds(1, SCHEDULE, retry_after=20.0) <= 20.25


def test_huge_attempt_numbers_do_not_overflow():
    assert backoff_seconds(10_000, SCHEDULE, rng=lambda: 1.0) == 8.0


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_rate_limits_and_server_errors_are_retried(status):
    assert should_retry_status(status)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413])
def test_other_client_errors_are_never_retried(status):
    assert not should_retry_status(status)


def test_timeouts_and_dropped_connections_are_retried_but_bad_urls_are_not():
    request = httpx.Request("POST", "http://x/users/track")
    assert should_retry_exception(httpx.ReadTimeout("slow", request=request))
    assert should_retry_exception(httpx.ConnectError("refused", request=request))
    assert should_retry_exception(httpx.RemoteProtocolError("dropped", request=request))
    assert not should_retry_exception(httpx.InvalidURL("nope"))


def test_retry_after_understands_seconds_epoch_and_http_dates():
    now = 1_700_000_000.0
    assert retry_after_seconds(httpx.Headers({"X-Ratelimit-Retry-After": "7"}), now) == 7
    assert retry_after_seconds(httpx.Headers({"Retry-After": "3"}), now) == 3
    assert retry_after_seconds(httpx.Headers({"X-RateLimit-Reset": str(int(now) + 5)}), now) == 5
    assert retry_after_seconds(httpx.Headers({"X-RateLimit-Reset": "2"}), now) == 2
    date = email.utils.formatdate(now + 10, usegmt=True)
    assert retry_after_seconds(httpx.Headers({"Retry-After": date}), now) == pytest.approx(10)
    assert retry_after_seconds(httpx.Headers({"Retry-After": "soon"}), now) is None
    assert retry_after_seconds(httpx.Headers({}), now) is None
