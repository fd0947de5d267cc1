"""Hostile partner input never becomes a 500: extreme numbers and dates, ids that are
objects or lists, odd shapes. Each preset's whole preparation (mapping, Braze validation,
outbox rows) either succeeds or refuses with a clear 4xx; over a real socket too."""

from __future__ import annotations

import json

import httpx
import pytest
from gateway_harness import fake_braze, make_settings, running_gateway
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headwater.braze.errors import BrazeError
from headwater.config.streams import StreamConfig
from headwater.streams.webhooks import _prepare

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
EXTREME_NUMBERS = st.one_of(
    INT64,
    st.sampled_from([0, -1, 10**11, 10**11 + 1, 1e20, -1e15, 1e308, -1e308, 5e-324, 2**63 - 1]),
    st.floats(allow_nan=False, allow_infinity=False),
)
EXTREME_TIMES = st.one_of(
    st.sampled_from([
        "99999999999999999999", "-99999999999999999999", "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-14:00", "3000-12-31T23:59:59Z", "3001-01-01T00:00:00Z",
        "0000-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "2024-02-30T00:00:00Z",
        "2024-05-02T10:00:00Z", "12/31/9999", "1.5e10", "-0", "٣٣٣", "", " ",
    ]),
    st.datetimes().map(lambda d: d.isoformat()),
    st.from_regex(r"\A-?[0-9]{1,22}(\.[0-9]{0,6})?\Z"),
    EXTREME_NUMBERS,
)  # fmt: skip
SCALARS = st.one_of(st.none(), st.booleans(), EXTREME_NUMBERS, st.text(max_size=20))
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=8,
)  # fmt: skip
ANY = st.one_of(JSON, EXTREME_TIMES)


def _maybe(keys: list[str], values=ANY) -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries({}, optional={key: values for key in keys})


AIQ_EVENT = _maybe(
    ["external_id", "braze_id", "email", "user_alias", "event_name", "event", "name",
     "properties", "attributes", "event_id", "id", "loyalty_tier"],
).flatmap(lambda d: _maybe(["timestamp", "time"], EXTREME_TIMES).map(lambda t: {**d, **t}))  # fmt: skip
AIQ = st.one_of(AIQ_EVENT, st.lists(AIQ_EVENT, max_size=3),
                st.fixed_dictionaries({"events": st.lists(AIQ_EVENT, max_size=3)}), JSON)  # fmt: skip
PERSON = _maybe(["email", "partner_user_id", "first_name", "last_name", "city", "state",
                 "country", "phone", "share_link"])  # fmt: skip
EXTOLE_EVENT = st.fixed_dictionaries(
    {"person": st.one_of(PERSON, JSON)},
    optional={"event_name": ANY, "event_id": ANY, "reward_id": ANY, "state": ANY,
              "event_time": EXTREME_TIMES, "program_label": ANY, "email": ANY,
              "data": st.one_of(_maybe(["face_value", "cart_value", "share_code",
                                        "subscription_group_id", "custom"]), JSON)},
)  # fmt: skip
EXTOLE = st.one_of(EXTOLE_EVENT, st.lists(EXTOLE_EVENT, max_size=3), JSON)

AUTH = {"type": "bearer", "token": "fuzz-token"}
CONFIGS = {
    "aiq": StreamConfig.model_validate({"preset": "actioniq", "auth": AUTH}),
    "extole": StreamConfig.model_validate(
        {"preset": "extole", "auth": AUTH, "reward_states": ["EARNED", "FULFILLED"],
         "content": {"attributes": ["share_link"], "token": "content-token"}}
    ),
    "shop": StreamConfig.model_validate(
        {"preset": "generic", "auth": AUTH, "mapping": {
            "each": "orders",
            "events": [{"external_id": "{{ item.user }}", "name": "{{ item.type }}",
                        "time": "{{ item.at }}", "properties": {"total": "{{ item.total }}"}}],
            "attributes": [{"external_id": "{{ item.user }}", "born": "{{ item.at }}"}],
            "event_id": "{{ item.id }}",
        }}
    ),
}  # fmt: skip
ORDER = _maybe(["user", "type", "at", "total", "id"])
SHOP = st.one_of(st.fixed_dictionaries({"orders": st.lists(ORDER, max_size=3)}), JSON)
PAYLOADS = {"aiq": AIQ, "extole": EXTOLE, "shop": SHOP}


def _prepared_or_4xx(stream: str, payload: object) -> None:
    try:
        _prepare(stream, CONFIGS[stream], payload, "braze", False)
    except BrazeError as exc:
        assert 400 <= exc.status < 500
        assert exc.body()["message"]


@pytest.mark.parametrize("stream", sorted(PAYLOADS))
def test_each_preset_prepares_or_refuses_clearly(stream):
    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
    @given(PAYLOADS[stream])
    def check(payload):
        _prepared_or_4xx(stream, payload)

    check()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    state = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'state.db'}"
    raw = {
        name: config.model_dump(mode="json", exclude_none=True) for name, config in CONFIGS.items()
    }
    for spec in raw.values():  # secrets are dumped masked; give them back
        spec["auth"] = AUTH
        if "content" in spec:
            spec["content"]["token"] = "content-token"
    with fake_braze() as (_fake, url):
        settings_ = make_settings(state, {"braze": url}, raw, run_workers=False)
        with running_gateway(settings_) as gw:
            yield gw


@pytest.mark.parametrize("stream", sorted(PAYLOADS))
def test_webhooks_answer_2xx_or_a_clear_4xx_never_500(gateway, stream):
    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(PAYLOADS[stream])
    def check(payload):
        answer = httpx.post(f"{gateway.url}/hooks/{stream}", content=json.dumps(payload),
                            headers={"Authorization": "Bearer fuzz-token"}, timeout=60)  # fmt: skip
        assert answer.status_code < 500, answer.text
        if answer.status_code >= 400:
            assert answer.json()["message"]

    check()


@pytest.mark.parametrize(
    ("stream", "payload", "field"),
    [
        ("aiq", {"external_id": "u", "event_name": "e", "timestamp": 1e20}, "timestamp"),
        ("aiq", {"external_id": "u", "event_name": "e", "timestamp": -1e15}, "timestamp"),
        ("aiq", {"external_id": "u", "event_name": "e", "timestamp": "99999999999999999999"},
         "timestamp"),
        ("aiq", {"external_id": "u", "event_name": "e",
                 "timestamp": "0001-01-01T00:00:00+14:00"}, "timestamp"),
        ("aiq", {"external_id": "u", "attributes": [1, 2]}, "attributes"),
        ("aiq", {"external_id": {"a": 1}, "event_name": "e"}, "external_id"),
        ("aiq", {"external_id": [1, 2], "event_name": "e"}, "external_id"),
        ("aiq", {"external_id": "u", "event_name": {"a": 1}}, "event_name"),
        ("extole", {"event_name": "shared", "event_time": 1e20,
                    "person": {"email": "a@example.com"}}, "event_time"),
        ("extole", {"event_name": "shared", "person": {"partner_user_id": [1, 2]}},
         "partner_user_id"),
        ("shop", {"orders": [{"user": "u", "type": "t", "id": {"a": 1}}]}, "event_id"),
    ],
)  # fmt: skip
def test_the_reported_inputs_are_a_422_naming_the_field(gateway, stream, payload, field):
    answer = httpx.post(f"{gateway.url}/hooks/{stream}", content=json.dumps(payload),
                        headers={"Authorization": "Bearer fuzz-token"})  # fmt: skip
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["field"] == field


@pytest.mark.parametrize("depth", [300, 1000])
@pytest.mark.parametrize(
    ("stream", "payload"),
    [
        ("aiq", lambda deep: {"external_id": "u", "event_name": "e", "properties": {"p": deep}}),
        ("aiq", lambda deep: {"external_id": "u", "attributes": {"p": deep}}),
        ("extole", lambda deep: {"event_name": "shared", "person": {"email": "a@example.com"},
                                 "program_label": deep}),
        ("shop", lambda deep: {"orders": [{"user": "u", "type": "t", "total": deep}]}),
    ],
)  # fmt: skip
def test_deeply_nested_values_are_a_clear_4xx(gateway, stream, payload, depth):
    body = json.dumps(payload("DEEP")).replace('"DEEP"', "[" * depth + "]" * depth)
    answer = httpx.post(f"{gateway.url}/hooks/{stream}", content=body,
                        headers={"Authorization": "Bearer fuzz-token"})  # fmt: skip
    assert answer.status_code in (202, 422), answer.text
    assert answer.json()["message"]
