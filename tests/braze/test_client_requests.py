"""BrazeClient.request and the id-endpoint helpers: chunking to 50, retries, 4xx raised."""

from __future__ import annotations

import pytest

from headwater.braze.client import BrazeClient
from headwater.braze.errors import BrazeRejectedError, BrazeUnavailableError
from headwater.braze.ratelimit import RateGovernor
from headwater.braze.retry import Backoff
from headwater.testing import serve_in_thread
from headwater.testing.sink import Fault, TrackSink

KEY = "rest-key-abcdef0123456789"
FAST = Backoff(base_seconds=0.01, cap_seconds=0.02, retry_after_spread_seconds=0.01)


def client_for(url: str, **options) -> BrazeClient:
    return BrazeClient(url, KEY, backoff=FAST, governor=RateGovernor(), **options)


@pytest.mark.anyio
async def test_export_ids_splits_ids_into_requests_of_50_and_merges_the_answers():
    sink = TrackSink(api_key=KEY)
    ids = [f"c{i}" for i in range(120)]
    with serve_in_thread(sink) as server:
        async with client_for(server.url) as client:
            answer = await client.export_ids(ids, fields_to_export=["external_id"])
    assert sink.stats.requests == 3
    assert sorted(u["external_id"] for u in answer["users"]) == sorted(ids)


@pytest.mark.anyio
async def test_alias_new_and_delete_users_chunk_and_sum():
    sink = TrackSink(api_key=KEY)
    aliases = [
        {"external_id": f"c{i}", "alias_name": f"a{i}", "alias_label": "crm"} for i in range(70)
    ]
    with serve_in_thread(sink) as server:
        async with client_for(server.url) as client:
            created = await client.alias_new(aliases)
            deleted = await client.delete_users(external_ids=[f"c{i}" for i in range(55)],
                                                braze_ids=["b1"])  # fmt: skip
    assert created["aliases_processed"] == 70
    assert deleted["deleted"] == 56
    assert sink.stats.requests == 2 + 3  # 50+20 aliases; 50+5 external ids, 1 braze id


@pytest.mark.anyio
async def test_request_retries_server_errors_then_returns_the_body():
    sink = TrackSink(api_key=KEY)
    sink.script(Fault(status=503), Fault(drop=True))
    with serve_in_thread(sink) as server:
        async with client_for(server.url) as client:
            answer = await client.request("/users/identify", {"aliases_to_identify": []})
    assert answer == {"message": "success"}
    assert sink.stats.requests == 3


@pytest.mark.anyio
async def test_request_raises_rejected_for_a_4xx_and_unavailable_after_max_attempts():
    sink = TrackSink(api_key=KEY)
    with serve_in_thread(sink) as server:
        async with client_for(server.url, max_attempts=2) as client:
            with pytest.raises(BrazeRejectedError) as rejected:
                await client.request("/no/such/endpoint", {})
            sink.script(Fault(status=502), Fault(status=502))
            with pytest.raises(BrazeUnavailableError) as unavailable:
                await client.request("users.alias.new", {"user_aliases": []})
    assert rejected.value.status == 404
    assert unavailable.value.status == 502 and "2 attempts" in str(unavailable.value)
