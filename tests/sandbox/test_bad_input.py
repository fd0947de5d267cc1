"""Bad input gets a Braze-style 4xx or a per-object error, never a 500: hand-picked cases,
hypothesis-generated JSON on the socket, and schemathesis over the OpenAPI document."""

from __future__ import annotations

import httpx
import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headwater.sandbox.app import create_app
from headwater.sandbox.settings import SandboxSettings

BRAZE_PATHS = ["/users/track", "/users/export/ids", "/users/alias/new", "/users/identify",
               "/users/delete", "/users/merge"]  # fmt: skip


@pytest.mark.parametrize("path", BRAZE_PATHS)
@pytest.mark.parametrize(
    "raw", [b"{", b"not json", b"[1, 2]", b'"text"', b"null", b"\xff\xfe", b"{}" * 3]
)
def test_malformed_or_non_object_json_is_a_400_on_every_endpoint(api, path, raw):
    response = api.post(path, content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert isinstance(response.json()["message"], str)


def test_body_over_4_mb_is_a_413(api, sandbox):
    objects = [{"external_id": f"u{i}", "s": "x" * 250} for i in range(17000)]
    raw = orjson.dumps({"attributes": objects})
    assert len(raw) > 4 * 1024 * 1024
    response = api.post("/users/track", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["message"]
    assert sandbox.users() == []


def test_chunked_body_over_4_mb_is_a_413(api):
    def chunks():
        yield b'{"attributes": ['
        for _ in range(5000):
            yield b'{"external_id": "u", "s": "' + b"x" * 1000 + b'"},'
        yield b'{"external_id": "u"}]}'

    response = api.post("/users/track", content=chunks())
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("obj", "needle"),
    [
        ({"external_id": 5}, "external_id"),
        ({"external_id": ""}, "external_id"),
        ({"external_id": "a", "user_alias": {"alias_name": "n", "alias_label": "l"}}, "one"),
        ({"user_alias": {"alias_name": "n"}}, "user_alias"),
        ({"user_alias": "n"}, "user_alias"),
        ({"braze_id": 7}, "braze_id"),
        ({"external_id": "a", "email": "a@@example"}, "email"),
        ({"external_id": "a", "email": 5}, "email"),
        ({"external_id": "a", "phone": "12"}, "phone"),
        ({"external_id": "a", "dob": "01-04-1990"}, "dob"),
        ({"external_id": "a", "gender": "X"}, "gender"),
        ({"external_id": "a", "email_subscribe": "maybe"}, "BAD_EMAIL_SUBSCRIPTION_STATE"),
        ({"external_id": "a", "current_location": {"lat": 1}}, "BAD_LOCATION_UPDATE"),
        ({"external_id": "a", "subscription_groups": "x"}, "BAD_SUBSCRIPTION_GROUP_ARRAY"),
        ({"external_id": "a", "tags": list(range(501))}, "501"),
        ({"external_id": "a", "tags": {"add": ["x" * 256]}}, "255"),
        ({"external_id": "a", "visits": {"inc": "1"}}, "inc"),
        ({"external_id": "a", "$bad": 1}, "$"),
        ({"external_id": "a", "_update_existing_only": "yes"}, "_update_existing_only"),
    ],
)
def test_bad_fields_are_per_object_errors_and_the_good_object_goes_through(
    api, sandbox, obj, needle
):
    body = api.post(
        "/users/track", json={"attributes": [obj, {"external_id": "ok", "a": 1}]}
    ).json()
    assert body["attributes_processed"] == 1
    [error] = body["errors"]
    assert error["index"] == 0
    assert error["input_array"] == "attributes"
    assert needle.lower() in error["type"].lower()
    assert [u["external_id"] for u in sandbox.users()] == ["ok"]


@pytest.mark.parametrize(
    "event",
    [
        {"external_id": "a", "name": "", "time": "2024-01-01"},
        {"external_id": "a", "name": "e", "time": "yesterday"},
        {"external_id": "a", "name": "e", "time": "2024-01-01", "properties": []},
        {"external_id": "a", "name": "e", "time": "2024-01-01", "properties": {"time": 1}},
        {"external_id": "a", "name": "e", "time": "2024-01-01", "properties": {"$x": 1}},
        {"external_id": "a", "name": "e" * 256, "time": "2024-01-01"},
    ],
)
def test_bad_events_are_per_object_errors(api, event):
    ok = {"external_id": "a", "name": "fine", "time": "2024-01-01"}
    body = api.post("/users/track", json={"events": [event, ok]}).json()
    assert body["events_processed"] == 1
    assert [(e["input_array"], e["index"]) for e in body["errors"]] == [("events", 0)]


@pytest.mark.parametrize(
    "purchase",
    [
        {"product_id": "p", "currency": "usd1", "price": 1},
        {"product_id": "p", "currency": "USD", "price": "1"},
        {"product_id": "p", "currency": "USD", "price": 1, "quantity": 101},
        {"product_id": "p", "currency": "USD", "price": 1, "quantity": 0},
        {"product_id": "", "currency": "USD", "price": 1},
    ],
)
def test_bad_purchases_are_per_object_errors(api, purchase):
    ok = {
        "external_id": "a",
        "product_id": "p",
        "currency": "USD",
        "price": 1,
        "time": "2024-01-01",
    }
    bad = {"external_id": "a", "time": "2024-01-01", **purchase}
    body = api.post("/users/track", json={"purchases": [bad, ok]}).json()
    assert body["purchases_processed"] == 1
    assert [(e["input_array"], e["index"]) for e in body["errors"]] == [("purchases", 0)]


def test_unknown_paths_and_methods_are_braze_shaped(api):
    missing = api.post("/users/nope", json={})
    assert missing.status_code == 404
    assert missing.json() == {"message": "Not Found"}
    wrong = api.get("/users/track")
    assert wrong.status_code == 405
    assert isinstance(wrong.json()["message"], str)


# -- property tests: random JSON on the socket ---------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)  # fmt: skip
identifier_keys = st.sampled_from(
    ["external_id", "user_alias", "braze_id", "email", "phone", "_update_existing_only",
     "_merge_objects", "name", "time", "product_id", "currency", "price", "quantity",
     "properties", "tags", "dob", "gender", "country", "subscription_groups", "push_tokens",
     "current_location", "orders", "address"]
)  # fmt: skip
track_objects = st.dictionaries(identifier_keys | st.text(max_size=8), json_values, max_size=6)
track_bodies = st.dictionaries(
    st.sampled_from(["attributes", "events", "purchases", "api_key", "other"]),
    st.lists(track_objects, max_size=5) | json_values,
    max_size=3,
)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=track_bodies)
def test_random_track_bodies_never_get_a_server_error(sandbox_server, body):
    headers = {"Authorization": f"Bearer {sandbox_server.key}"}
    response = httpx.post(f"{sandbox_server.url}/users/track", json=body, headers=headers)
    assert response.status_code in (201, 400), response.text
    answer = response.json()
    if response.status_code == 201:
        processed = sum(v for k, v in answer.items() if k.endswith("_processed"))
        assert processed + len(answer.get("errors", [])) == sum(
            len(body[k])
            for k in ("attributes", "events", "purchases")
            if isinstance(body.get(k), list)
        )
    else:
        assert isinstance(answer["message"], str)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(path=st.sampled_from(BRAZE_PATHS[1:]), body=st.dictionaries(
    st.sampled_from(["external_ids", "user_aliases", "braze_id", "email_address", "phone",
                     "fields_to_export", "aliases_to_identify", "emails_to_identify",
                     "phone_numbers_to_identify", "braze_ids", "email_addresses",
                     "phone_numbers", "merge_updates"]),
    json_values | st.lists(track_objects, max_size=3), max_size=3))  # fmt: skip
def test_random_bodies_on_identity_endpoints_never_get_a_server_error(sandbox_server, path, body):
    headers = {"Authorization": f"Bearer {sandbox_server.key}"}
    response = httpx.post(f"{sandbox_server.url}{path}", json=body, headers=headers)
    assert response.status_code < 500, (path, body, response.text)
    assert isinstance(response.json()["message"], str)


# -- schemathesis over the OpenAPI document -----------------------------------------------

schema = schemathesis.openapi.from_dict(
    create_app(SandboxSettings(db=":memory:")).openapi()
).exclude(
    # these two steer the sandbox into misbehaving on purpose (faults, 1-request budgets);
    # they are checked by hand in test_gate.py
    path_regex="^/_sandbox/(faults|rate_limits)$",
    method="POST",
)


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_generated_request_gets_a_server_error(case, sandbox_server):
    headers = {"Authorization": f"Bearer {sandbox_server.key}"}
    response = case.call(base_url=sandbox_server.url, headers=headers)
    case.validate_response(response, checks=[schemathesis.checks.not_a_server_error])
    assert response.status_code < 500, response.text


def test_increment_past_64_bits_neither_fails_nor_poisons_the_profile(api, sandbox):
    for body in (
        {"attributes": [{"external_id": "big", "n": 18446744073709551615}]},
        {"attributes": [{"external_id": "big", "n": {"inc": 1}}]},
        {"attributes": [{"external_id": "big", "later": 1}]},
    ):
        assert api.post("/users/track", json=body).status_code == 201
    attributes = sandbox.user("big")["custom_attributes"]
    assert attributes["n"] == float(2**64)
    assert attributes["later"] == 1


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/users/alias/new", {"user_aliases": [{"alias_name": "a", "alias_label": "l",
                                                "external_id": {"x": 1}}]}),
        ("/users/merge", {"merge_updates": [{"identifier_to_merge": {"user_alias": {
            "alias_name": "", "alias_label": ""}}, "identifier_to_keep": {"external_id": "k"}}]}),
        ("/users/delete", {"email_addresses": [{"email": "a@example.com", "prioritization": 5}]}),
        ("/users/merge", {"merge_updates": [{"identifier_to_merge": {"email": "a@example.com",
                                                                     "prioritization": 5},
                                             "identifier_to_keep": {"external_id": "k"}}]}),
    ],
)  # fmt: skip
def test_wrongly_typed_identity_fields_are_client_errors(api, path, body):
    api.post("/users/track", json={"attributes": [{"external_id": "k", "email": "a@example.com"}]})
    response = api.post(path, json=body)
    assert 200 <= response.status_code < 500
    assert response.json()["message"]


def test_segments_page_that_is_a_unicode_digit_is_a_400_not_a_crash(api):
    assert api.get("/segments/list", params={"page": "²"}).status_code == 400
