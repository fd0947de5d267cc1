"""The sandbox's ``/users/export/segment``: Braze's request rules, the answer, the files
(one ZIP of NDJSON, ~5,000 users a file), the link, the callback; segment filters."""

from __future__ import annotations

import io
import time
import zipfile

import httpx
import orjson
import pytest

from headwater.braze.segment_export import USERS_PER_FILE
from headwater.sandbox.segments.filters import FilterError, check_filter, compile_filter


def export(api, segment_id: str, fields=("braze_id", "external_id", "custom_attributes"), **extra):
    return api.post(
        "/users/export/segment",
        json={"segment_id": segment_id, "fields_to_export": list(fields), **extra},
    )


def fetch(url: str, bound: float = 60.0) -> bytes:
    """Poll the link as a client does (it is 404 until the files are written)."""
    deadline = time.monotonic() + bound
    while True:
        answer = httpx.get(url, timeout=30)
        if answer.status_code == 200:
            return answer.content
        assert answer.status_code == 404 and time.monotonic() < deadline
        time.sleep(0.05)


def users_in(content: bytes) -> list[list[dict]]:
    with zipfile.ZipFile(io.BytesIO(content)) as zf:
        return [
            [orjson.loads(line) for line in zf.read(name).splitlines() if line]
            for name in zf.namelist()
        ]


def test_an_export_answers_at_once_and_its_link_serves_braze_files(sandbox, api):
    sandbox.seed(attributes=[{"external_id": f"u{i}", "tier": "gold"} for i in range(12_000)])
    segment = sandbox.define_segment("All")
    answer = export(api, segment["id"])
    assert answer.status_code == 201
    body = answer.json()
    assert set(body) == {"message", "object_prefix", "url"} and body["message"] == "success"
    prefix_uuid, _, seconds = body["object_prefix"].rpartition("-")
    assert len(prefix_uuid) == 36 and seconds.isdigit()
    assert f"/segment-export/{segment['id']}/" in body["url"]
    files = users_in(fetch(body["url"]))
    assert [len(f) for f in files] == [USERS_PER_FILE, USERS_PER_FILE, 2000]
    first = files[0][0]
    assert set(first) == {"braze_id", "external_id", "custom_attributes"}
    assert first["custom_attributes"] == {"tier": "gold"}
    # the link is the credential: without its token there is nothing
    assert httpx.get(body["url"].split("?")[0]).status_code == 404
    assert httpx.get(body["url"].split("?")[0] + "?token=guess").status_code == 404


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"fields_to_export": ["email"]}, "'segment_id' is required"),
        ({"segment_id": "s"}, "'fields_to_export' is required"),
        ({"segment_id": "s", "fields_to_export": []}, "'fields_to_export' is required"),
        ({"segment_id": "s", "fields_to_export": ["shoe_size"]}, "Invalid fields_to_export"),
        ({"segment_id": "s", "fields_to_export": ["email"], "output_format": "csv"}, "'output_format'"),
        ({"segment_id": "s", "fields_to_export": ["email"], "output_format": "gzip"}, "bucket"),
        ({"segment_id": "s", "fields_to_export": ["email"], "callback_endpoint": {"a": 1}}, "callback"),
        ({"segment_id": {"$oid": 1}, "fields_to_export": ["email"]}, "'segment_id'"),
        ({"segment_id": "nope", "fields_to_export": ["email"]}, "Invalid segment_id"),
    ],
)  # fmt: skip
def test_requests_braze_refuses(sandbox, api, body, message):
    sandbox.define_segment("S", id="s")
    answer = api.post("/users/export/segment", json=body)
    assert answer.status_code == 400
    assert message in answer.json()["message"]


def test_the_permission_and_one_running_export_per_segment(sandbox, api):
    assert httpx.post(f"{sandbox.url}/users/export/segment", json={}).status_code == 401
    sandbox.seed(attributes=[{"external_id": f"u{i}"} for i in range(20_000)])
    segment = sandbox.define_segment("All")
    first = export(api, segment["id"])
    second = export(api, segment["id"])
    # The second asks while the first's files are being written (20,000 users), or just
    # after: both are Braze's answers; a 429 is the rule for the running case.
    assert first.status_code == 201
    assert second.status_code in (201, 429)
    if second.status_code == 429:
        assert "already running" in second.json()["message"]
    fetch(first.json()["url"])


def test_duplicate_and_truncation_faults(sandbox, api):
    sandbox.seed(attributes=[{"external_id": f"u{i}"} for i in range(1000)])
    segment = sandbox.define_segment("All")
    sandbox.set_faults(export_duplicate_share=1.0)
    (users,) = users_in(fetch(export(api, segment["id"]).json()["url"]))
    assert len(users) == 2000 and len({u["braze_id"] for u in users}) == 1000
    sandbox.set_faults(export_duplicate_share=0, export_truncated_share=1.0)
    content = fetch(export(api, segment["id"]).json()["url"])
    with pytest.raises(zipfile.BadZipFile):
        users_in(content)


def test_segments_defined_by_filters(sandbox, api):
    sandbox.seed(
        attributes=[
            {"external_id": "a", "tier": "gold", "country": "FR", "vip": True},
            {"external_id": "b", "tier": "silver", "country": "DE"},
            {"external_id": "c", "tier": "gold", "country": "US"},
        ]
    )
    segment = sandbox.define_segment(
        "Gold outside the US",
        {"all": [{"attribute": "tier", "equals": "gold"}, {"not": {"field": "country", "in": ["US"]}}]},
    )  # fmt: skip
    (users,) = users_in(
        fetch(export(api, segment["id"], ["external_id", "braze_id"]).json()["url"])
    )
    assert [u["external_id"] for u in users] == ["a"]
    listed = api.get("/segments/list").json()["segments"]
    assert [s["name"] for s in listed] == ["Gold outside the US"]


@pytest.mark.parametrize(
    ("spec", "where"),
    [
        ({"attribute": "x"}, "exactly one of"),
        ({"attribute": "x", "equals": 1, "in": [1]}, "exactly one of"),
        ({"field": "shoe_size", "equals": 1}, "unknown profile field"),
        ({"attribute": "x", "in": "gold"}, "filter.in"),
        ({"attribute": "x", "less_than": "5"}, "a number"),
        ({"all": {"attribute": "x"}}, "filter.all"),
        ({"any": [{"attribute": "x", "exists": 1}]}, "filter.any[0].exists"),
        ("tier = gold", "an object"),
    ],
)
def test_bad_filters_are_refused_naming_where(sandbox, spec, where):
    with pytest.raises(FilterError, match=where.replace("[", r"\[").replace("]", r"\]")):
        check_filter(spec)
    answer = httpx.post(f"{sandbox.url}/_sandbox/segments", json={"name": "S", "filter": spec})
    assert answer.status_code == 400


def test_deeply_nested_filters_are_refused():
    spec: dict = {"attribute": "x", "exists": True}
    for _ in range(50):
        spec = {"not": spec}
    with pytest.raises(FilterError, match="nest at most"):
        check_filter(spec)


def test_filter_semantics():
    profile = {"country": "FR", "random_bucket": 500,
               "custom_attributes": {"tier": "gold", "n": 1, "flag": True}}  # fmt: skip
    cases = [
        ({"attribute": "tier", "equals": "gold"}, True),
        ({"attribute": "n", "equals": True}, False),  # 1 is not true
        ({"attribute": "flag", "equals": True}, True),
        ({"attribute": "tier", "in": ["silver", "gold"]}, True),
        ({"attribute": "missing", "exists": False}, True),
        ({"field": "random_bucket", "less_than": 1000}, True),
        ({"field": "random_bucket", "greater_than": 1000}, False),
        ({"attribute": "tier", "less_than": 3}, False),
        ({"any": [{"field": "country", "equals": "DE"}, {"attribute": "n", "exists": True}]}, True),
        ({"attribute": "tier", "in": [{"a": 1}, "gold"]}, True),
        (None, True),
    ]
    for spec, expected in cases:
        check_filter(spec)
        assert compile_filter(spec)(profile) is expected, spec
