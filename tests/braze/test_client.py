"""BrazeClient.track against the local sink on a real socket: batching, per-object errors,
retries, rate limits, secrets. Every item must come back exactly once."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from pydantic import SecretStr

from headwater.braze.client import BrazeClient, ItemResult, TrackItem
from headwater.braze.errors import BrazeRejectedError
from headwater.braze.limits import BatchPolicy
from headwater.braze.ratelimit import RateGovernor
from headwater.braze.retry import Backoff
from headwater.testing import serve_in_thread
from headwater.testing.sink import Fault, TrackSink

KEY = "sk-live-0123456789abcdef-SECRET"
FAST = Backoff(base_seconds=0.01, cap_seconds=0.05, retry_after_spread_seconds=0.01)
DEFAULTS: dict = {}


@pytest.fixture(params=["httpx", "aiohttp"], autouse=True)
def http_engine(request, monkeypatch) -> str:
    """Every test runs on both HTTP engines the client can use."""
    if request.param == "aiohttp":
        pytest.importorskip("aiohttp")
    monkeypatch.setitem(DEFAULTS, "http", request.param)
    return request.param


@contextlib.contextmanager
def running(sink: TrackSink) -> Iterator[str]:
    with serve_in_thread(sink) as server:
        yield server.url


def client_for(url: str, **options) -> BrazeClient:
    options.setdefault("backoff", FAST)
    options.setdefault("governor", RateGovernor())
    options.setdefault("max_concurrency", 4)
    options.setdefault("timeout", 5.0)
    options.setdefault("http", DEFAULTS["http"])
    return BrazeClient(url, options.pop("api_key", KEY), **options)


def attributes(n: int, **extra) -> list[TrackItem]:
    return [TrackItem("attributes", {"external_id": f"u{i}", "n": i, **extra}, i) for i in range(n)]


class Collector:
    def __init__(self) -> None:
        self.calls: list[list[ItemResult]] = []

    def __call__(self, results: list[ItemResult]) -> None:
        self.calls.append(results)

    @property
    def by_ref(self) -> dict:
        out: dict = {}
        for call in self.calls:
            for result in call:
                assert result.ref not in out, f"{result.ref} reported twice"
                out[result.ref] = result
        return out


@pytest.mark.anyio
async def test_track_delivers_every_object_in_full_batches_and_reports_each_ref_once():
    sink = TrackSink(api_key=KEY, keep_objects=True)
    got = Collector()
    with running(sink) as url:
        async with client_for(url) as client:
            summary = await client.track(attributes(200), on_results=got)
    assert sorted(len(b["attributes"]) for b in sink.bodies) == [50, 75, 75]
    assert len(got.calls) == 3  # once per request
    assert all(r.ok for r in got.by_ref.values()) and set(got.by_ref) == set(range(200))
    assert (summary.requests, summary.accepted, summary.failed) == (3, 200, 0)
    assert sink.stats.accepted == 200


@pytest.mark.anyio
async def test_combined_policy_mixes_kinds_within_75_objects():
    sink = TrackSink(api_key=KEY, keep_objects=True)
    items = attributes(60) + [
        TrackItem("events", {"external_id": f"u{i}", "name": "e", "time": "2024-01-01"}, f"e{i}")
        for i in range(60)
    ]
    with running(sink) as url:
        async with client_for(url) as client:
            summary = await client.track(items)
    sizes = sorted(sum(len(v) for v in b.values()) for b in sink.bodies)
    assert sizes == [45, 75] and summary.accepted == 120


@pytest.mark.anyio
async def test_per_kind_policy_sends_75_of_each_array_per_request():
    sink = TrackSink(api_key=KEY, keep_objects=True, max_objects=225)
    items = []
    for i in range(75):
        items.append(TrackItem("attributes", {"external_id": f"u{i}"}, f"a{i}"))
        items.append(TrackItem("events", {"external_id": f"u{i}", "name": "e"}, f"e{i}"))
    with running(sink) as url:
        async with client_for(url, batch_policy=BatchPolicy.PER_KIND) as client:
            summary = await client.track(items)
    sizes = [(len(b.get("attributes", [])), len(b.get("events", []))) for b in sink.bodies]
    # The 75th attribute completes a batch, which takes the 74 events waiting with it.
    assert sorted(sizes) == [(0, 1), (75, 74)]
    assert summary.requests == 2 and summary.accepted == 150


@pytest.mark.anyio
async def test_track_reports_bad_objects_by_ref_and_delivers_the_rest():
    sink = TrackSink(api_key=KEY, keep_objects=True)
    items = attributes(100)
    items[3].payload["_sink_reject"] = "EMAIL_BAD_FORMAT"
    items[80].payload = {"first_name": "no identifier"}
    got = Collector()
    with running(sink) as url:
        async with client_for(url) as client:
            summary = await client.track(items, on_results=got)
    results = got.by_ref
    assert results[3].error == "EMAIL_BAD_FORMAT" and not results[3].ok
    assert not results[80].ok and "external_id" in results[80].error
    assert all(results[i].ok for i in range(100) if i not in (3, 80))
    assert (summary.accepted, summary.failed, summary.requests) == (98, 2, 2)


@pytest.mark.anyio
async def test_a_fatal_400_naming_objects_fails_them_and_resends_the_others():
    sink = TrackSink(api_key=KEY, keep_objects=True, invalid_is_fatal=True)
    items = attributes(75)
    for bad in (0, 40, 74):
        items[bad].payload["_sink_reject"] = f"bad object {bad}"
    got = Collector()
    with running(sink) as url:
        async with client_for(url) as client:
            summary = await client.track(items, on_results=got)
    results = got.by_ref
    assert {r for r, res in results.items() if not res.ok} == {0, 40, 74}
    assert results[40].error == "bad object 40"
    assert sink.stats.accepted == 72
    assert sink.stats.statuses[400] == 1 and sink.stats.statuses[201] == 1
    assert len(sink.bodies[1]["attributes"]) == 72
    assert (summary.accepted, summary.failed, summary.retries) == (72, 3, 0)


@pytest.mark.anyio
async def test_max_input_length_exceeded_halves_the_batch_until_braze_takes_it():
    sink = TrackSink(api_key=KEY, max_objects=30)  # a contract with a smaller cap
    with running(sink) as url:
        async with client_for(url) as client:
            summary = await client.track(attributes(75))
    assert summary.accepted == 75 and summary.failed == 0
    assert sink.stats.accepted == 75


@pytest.mark.anyio
async def test_other_4xx_fail_the_request_objects_without_retrying():
    sink = TrackSink(api_key=KEY)
    sink.script(Fault(status=404, body={"message": "Not Found"}))
    got = Collector()
    with running(sink) as url:
        async with client_for(url, max_concurrency=1) as client:
            summary = await client.track(attributes(80), on_results=got)
    failed = [r for r in got.by_ref.values() if not r.ok]
    assert len(failed) == 75 and failed[0].error == "Braze answered 404: Not Found"
    assert summary.retries == 0 and summary.accepted == 5


@pytest.mark.anyio
async def test_server_errors_and_dropped_connections_are_retried_until_accepted():
    sink = TrackSink(api_key=KEY)
    sink.script(Fault(status=503), Fault(drop=True), Fault(status=500), Fault(status=502))
    with running(sink) as url:
        async with client_for(url, max_concurrency=1) as client:
            summary = await client.track(attributes(150))
    assert summary.accepted == 150 and summary.failed == 0
    assert summary.retries == 4 and summary.requests == 6
    assert sink.stats.statuses["dropped"] == 1
    assert sink.stats.accepted == 150


@pytest.mark.anyio
async def test_a_request_that_times_out_is_retried():
    sink = TrackSink(api_key=KEY)
    # A timeout generous enough for a loaded machine, a stall far past it: no race on speed.
    sink.script(Fault(stall_seconds=4.0))
    with running(sink) as url:
        async with client_for(url, max_concurrency=1, timeout=1.0) as client:
            summary = await client.track(attributes(10))
            stalled = sink.stats.in_flight
    assert summary.accepted == 10 and summary.retries == 1
    assert stalled == 1  # done while the stalled answer was still pending: it did not wait


@pytest.mark.anyio
async def test_after_max_attempts_the_objects_are_reported_failed_not_raised():
    sink = TrackSink(api_key=KEY)
    sink.script(*[Fault(status=503)] * 3)
    got = Collector()
    with running(sink) as url:
        async with client_for(url, max_concurrency=1, max_attempts=3) as client:
            summary = await client.track(attributes(75), on_results=got)
            again = await client.track(attributes(75))  # the next run gets through
    assert summary.failed == 75 and summary.accepted == 0 and summary.retries == 2
    assert all("gave up after 3 attempts: 503" in r.error for r in got.by_ref.values())
    assert again.accepted == 75


@pytest.mark.parametrize("reset_form", ["epoch", "seconds", "retry_after"])
@pytest.mark.anyio
async def test_a_429_storm_pauses_all_workers_until_the_reset(reset_form):
    sink = TrackSink(api_key=KEY, reset_form=reset_form)
    with running(sink) as url:
        async with client_for(url, max_concurrency=8, max_attempts=4) as client:
            # Started once the sink serves and the client is ready, with room to spare: on a
            # loaded machine a storm begun before start-up could be over before the first try.
            storm_end = sink.storm(2.0)
            summary = await client.track(attributes(75 * 24))
    assert summary.accepted == 75 * 24 and summary.failed == 0
    assert 1 <= summary.rate_limited <= 8  # the first wave only: then everyone waited
    during_storm = sink.stats.statuses[429]
    assert during_storm == summary.rate_limited
    assert time.time() >= storm_end


@pytest.mark.anyio
async def test_the_client_stays_within_a_small_rate_limit_window():
    sink = TrackSink(api_key=KEY, rate_limit=10, rate_window_seconds=1.0)
    with running(sink) as url:
        async with client_for(url, max_concurrency=4) as client:
            summary = await client.track(attributes(75 * 25))
    assert summary.accepted == 75 * 25
    # It learns the budget from the headers and waits for the reset instead of hammering.
    assert summary.rate_limited <= 4


@pytest.mark.anyio
async def test_no_more_than_max_concurrency_requests_are_in_flight():
    sink = TrackSink(0.05, api_key=KEY)
    with running(sink) as url:
        async with client_for(url, max_concurrency=4) as client:
            summary = await client.track(attributes(75 * 40))
    assert summary.requests == 40
    assert sink.stats.max_in_flight == 4


@pytest.mark.anyio
async def test_bad_key_stops_the_run_and_no_message_repr_or_log_shows_it(caplog):
    sink = TrackSink(api_key="the-right-key")
    sink.script(Fault(status=503, body={"message": f"upstream saw {KEY}"}))
    caplog.set_level(logging.DEBUG)
    with running(sink) as url:
        client = client_for(url, api_key=SecretStr(KEY), max_concurrency=1)
        async with client:
            with pytest.raises(BrazeRejectedError) as raised:
                await client.track(attributes(10))
    assert raised.value.status == 401
    seen = [str(raised.value), repr(raised.value), repr(raised.value.body), repr(client),
            str(client), caplog.text, repr(vars(client))]  # fmt: skip
    assert all(KEY not in text for text in seen)
    assert "401" in str(raised.value)


@pytest.mark.anyio
async def test_key_is_sent_only_as_a_bearer_header_and_bulk_marks_requests():
    sink = TrackSink(api_key=KEY, keep_objects=True)
    with running(sink) as url:
        async with client_for(url, bulk=True) as client:
            await client.track(attributes(3))
    (headers,) = sink.headers_seen
    assert headers["authorization"] == f"Bearer {KEY}"
    assert headers["x-braze-bulk"] == "true"
    assert KEY not in str(sink.bodies)


@pytest.mark.anyio
async def test_track_takes_an_async_iterable_and_an_async_callback_and_reports_progress():
    sink = TrackSink(api_key=KEY)
    committed: list = []
    progress: list[int] = []

    async def rows() -> AsyncIterator[TrackItem]:
        for item in attributes(160):
            yield item

    async def commit(results: list[ItemResult]) -> None:
        committed.extend(r.ref for r in results if r.ok)

    with running(sink) as url:
        async with client_for(url) as client:
            await client.track(rows(), on_results=commit, progress=progress.append)
    assert sorted(committed) == list(range(160))
    assert sum(progress) == 160


@pytest.mark.anyio
async def test_client_side_validation_reports_invalid_objects_without_sending_them():
    sink = TrackSink(api_key=KEY, keep_objects=True)
    items = attributes(5)
    items[2].payload["email"] = "not-an-email"
    got = Collector()
    with running(sink) as url:
        async with client_for(url, validate=True) as client:
            summary = await client.track(items, on_results=got)
    assert not got.by_ref[2].ok and "email" in got.by_ref[2].error.lower()
    assert [o["external_id"] for _, o in sink.accepted_objects] == ["u0", "u1", "u3", "u4"]
    assert (summary.accepted, summary.failed) == (4, 1)
