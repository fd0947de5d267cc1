"""Presets turn partner payloads into Braze objects that pass Braze's own validation."""

from __future__ import annotations

import pytest

from headwater.braze.track import (
    validate_attributes_object,
    validate_event_object,
)
from headwater.config.streams import StreamConfig
from headwater.errors import RowError
from headwater.streams.presets import PRESETS

BASIC = {"type": "basic", "username": "extole", "password": "pw"}


def _stream(**extra) -> StreamConfig:
    return StreamConfig.model_validate({"preset": "extole", "auth": BASIC, **extra})


def _map(payload, **extra):
    config = _stream(**extra)
    return PRESETS[config.preset](payload, "extole", config)


def _by_kind(mapped):
    out = {}
    for item in mapped.objects:
        out.setdefault(item.kind, []).append(item.obj)
    return out


def test_extole_share_link_event_becomes_event_and_profile_attributes(extole_case):
    objects = _by_kind(_map(extole_case("created_share_link")))
    (event,) = objects["events"]
    assert event["external_id"] == "cust-1001"
    assert event["name"] == "extole_created_share_link"
    assert event["time"] == "2024-05-02T10:00:00.000Z"
    assert event["properties"]["program"] == "refer-a-friend"
    assert event["properties"]["funnel"] == "advocate"
    assert event["properties"]["partner"] == "extole"
    assert event["properties"]["share_link"] == "https://refer.shop.example/ada"
    (attributes,) = objects["attributes"]
    assert attributes == {
        "external_id": "cust-1001",
        "email": "ada@example.com",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "phone": "+442071838750",
        "home_city": "London",
        "country": "GB",
        "extole_state": "LDN",
        "extole_share_link": "https://refer.shop.example/ada",
        "extole_share_code": "ADA10",
    }
    validate_event_object(event)
    validate_attributes_object(attributes)


def test_extole_share_event_carries_channel(extole_case):
    (event,) = _by_kind(_map(extole_case("shared")))["events"]
    assert event["name"] == "extole_shared"
    assert event["properties"]["share_channel"] == "EMAIL"
    assert event["properties"]["recipient_count"] == 3


def test_extole_reward_fulfilled_maps_face_value_and_coupon(extole_case):
    mapped = _map(extole_case("reward_fulfilled"))
    (event,) = _by_kind(mapped)["events"]
    assert event["name"] == "extole_reward_fulfilled"
    props = event["properties"]
    assert props["face_value"] == 10.0
    assert props["face_value_type"] == "USD"
    assert props["coupon_code"] == "THANKS-ADA-10"
    assert props["reward_id"] == "b600f6fdd06c83f8ffdd6309"
    assert props["custom_key"] == "custom_value"
    assert mapped.objects[-1].partner_id == "reward:b600f6fdd06c83f8ffdd6309:FULFILLED"
    validate_event_object(event)


def test_extole_reward_states_other_than_fulfilled_are_skipped_unless_enabled(extole_case):
    skipped = _map(extole_case("reward_earned"))
    assert skipped.objects == [] and "EARNED" in skipped.skipped
    enabled = _map(extole_case("reward_earned"), reward_states=["FULFILLED", "earned"])
    assert _by_kind(enabled)["events"][0]["name"] == "extole_reward_earned"


def test_extole_external_id_can_come_from_email(extole_case):
    objects = _by_kind(_map(extole_case("shared"), external_id_from="email"))
    assert objects["events"][0]["external_id"] == "ada@example.com"


def test_extole_person_without_partner_user_id_is_identified_by_email(extole_case):
    objects = _by_kind(_map(extole_case("converted")))
    event = objects["events"][0]
    assert event["email"] == "grace@example.com" and "external_id" not in event
    assert event["properties"]["cart_value"] == 120.5
    validate_event_object(event)


def test_extole_subscription_event_sets_the_subscription_group(extole_case):
    (attributes,) = _by_kind(_map(extole_case("subscribed")))["attributes"]
    assert attributes["subscription_groups"] == [
        {"subscription_group_id": "8f2c1d7e-news-letter", "subscription_state": "subscribed"}
    ]
    validate_attributes_object(attributes)


def test_extole_payload_without_any_identity_is_a_row_error():
    with pytest.raises(RowError, match="email"):
        _map({"event_name": "shared", "person": {"first_name": "Nobody"}})


def test_actioniq_event_with_epoch_millis_and_extra_attributes():
    config = StreamConfig.model_validate(
        {"preset": "actioniq", "auth": {"type": "bearer", "token": "t"}}
    )
    mapped = PRESETS["actioniq"](
        {
            "event_name": "aiq_audience_entered",
            "external_id": 42,
            "timestamp": 1714644000000,
            "properties": {"audience": "vip"},
            "attributes": {"aiq_vip": True},
            "loyalty_tier": "gold",
        },
        "aiq",
        config,
    )
    objects = _by_kind(mapped)
    assert objects["events"] == [
        {
            "external_id": "42",
            "name": "aiq_audience_entered",
            "time": "2024-05-02T10:00:00.000Z",
            "properties": {"audience": "vip"},
        }
    ]
    assert objects["attributes"] == [{"external_id": "42", "aiq_vip": True, "loyalty_tier": "gold"}]


def test_actioniq_accepts_braze_id_and_batches():
    config = StreamConfig.model_validate(
        {"preset": "actioniq", "auth": {"type": "bearer", "token": "t"}}
    )
    mapped = PRESETS["actioniq"](
        {"events": [{"event_name": "a", "braze_id": "b1"}, {"event_name": "b", "braze_id": "b2"}]},
        "aiq",
        config,
    )
    assert [o.obj["braze_id"] for o in mapped.objects] == ["b1", "b2"]
    with pytest.raises(RowError, match="external_id"):
        PRESETS["actioniq"]({"event_name": "a"}, "aiq", config)


def test_generic_liquid_mapping_keeps_types_and_iterates():
    config = StreamConfig.model_validate(
        {
            "preset": "generic",
            "auth": {"type": "bearer", "token": "t"},
            "mapping": {
                "each": "orders",
                "event_id": "{{ item.id }}",
                "events": [
                    {
                        "external_id": "{{ customer.id }}",
                        "name": "order_{{ item.status | downcase }}",
                        "time": "{{ item.at }}",
                        "properties": {"total": "{{ item.total }}", "coupon": "{{ item.coupon }}"},
                    }
                ],
                "attributes": [{"external_id": "{{ customer.id }}", "tier": "{{ customer.tier }}"}],
            },
        }
    )
    payload = {
        "customer": {"id": "c1", "tier": "gold"},
        "orders": [
            {"id": 1, "status": "PAID", "at": "2024-05-02T10:00:00Z", "total": 12.5},
            {"id": 2, "status": "SHIPPED", "at": "2024-05-03T10:00:00Z", "total": 3, "coupon": "X"},
        ],
    }
    mapped = PRESETS["generic"](payload, "shop", config)
    events = [o.obj for o in mapped.objects if o.kind == "events"]
    assert events[0] == {
        "external_id": "c1",
        "name": "order_paid",
        "time": "2024-05-02T10:00:00Z",
        "properties": {"total": 12.5},
    }
    assert events[1]["properties"] == {"total": 3, "coupon": "X"}
    assert [o.partner_id for o in mapped.objects if o.kind == "events"] == ["1", "2"]


def test_a_broken_template_is_reported_when_the_stream_is_loaded():
    from headwater.config.streams import parse_streams
    from headwater.errors import ConfigError

    with pytest.raises(
        ConfigError, match=r"streams.shop.mapping.events.0.external_id: template '\{\{ user. \}\}'"
    ):
        parse_streams(
            {
                "shop": {
                    "preset": "generic",
                    "auth": {"type": "bearer", "token": "t"},
                    "mapping": {"events": [{"external_id": "{{ user. }}", "name": "x"}]},
                }
            }
        )


def test_extole_email_only_person_keeps_the_email_on_the_profile(extole_case):
    objects = _by_kind(_map(extole_case("converted")))
    (attributes,) = objects["attributes"]
    assert attributes == {"email": "grace@example.com", "first_name": "Grace",
                          "last_name": "Hopper"}  # fmt: skip
    validate_attributes_object(attributes)
    one_field = _by_kind(_map({"event_name": "shared", "person": {"email": "a@example.com",
                                                                  "first_name": "A"}}))  # fmt: skip
    assert one_field["attributes"] == [{"email": "a@example.com", "first_name": "A"}]


def test_extole_reward_state_is_not_the_persons_region(extole_case):
    mapped = _map(extole_case("reward_earned"), reward_states=["EARNED"])
    (attributes,) = _by_kind(mapped)["attributes"]
    assert attributes == {"external_id": "cust-1001", "email": "ada@example.com"}
    with_region = extole_case("reward_earned")
    with_region["person"]["state"] = "CA"
    (attributes,) = _by_kind(_map(with_region, reward_states=["EARNED"]))["attributes"]
    assert attributes["extole_state"] == "CA"


@pytest.mark.parametrize(
    ("field", "place", "value"),
    [
        ("partner_user_id", "person", {"a": 1}),
        ("email", "person", ["a@example.com"]),
        ("event_name", "top", {"n": 1}),
        ("event_id", "top", [1, 2]),
        ("reward_id", "top", True),
        ("first_name", "person", {"first": "Ada"}),
    ],
)
def test_extole_ids_and_names_that_are_not_text_name_the_field(extole_case, field, place, value):
    payload = extole_case("shared")
    (payload["person"] if place == "person" else payload)[field] = value
    with pytest.raises(RowError) as caught:
        _map(payload)
    assert caught.value.field == field


def test_extole_numeric_ids_become_their_digits():
    objects = _by_kind(_map({"event_name": "shared", "person": {"partner_user_id": 1001}}))
    assert objects["events"][0]["external_id"] == "1001"
    objects = _by_kind(_map({"event_name": "shared", "person": {"partner_user_id": 1e3}}))
    assert objects["events"][0]["external_id"] == "1000"


def _aiq(payload):
    config = StreamConfig.model_validate(
        {"preset": "actioniq", "auth": {"type": "bearer", "token": "t"}}
    )
    return PRESETS["actioniq"](payload, "aiq", config)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"external_id": {"a": 1}}, "external_id"),
        ({"external_id": [1, 2]}, "external_id"),
        ({"braze_id": {"b": 2}}, "braze_id"),
        ({"event_name": ["x"]}, "event_name"),
        ({"event_id": {"id": 1}}, "event_id"),
        ({"attributes": [1, 2]}, "attributes"),
        ({"timestamp": 1e20}, "timestamp"),
        ({"timestamp": -1e15}, "timestamp"),
        ({"timestamp": "99999999999999999999"}, "timestamp"),
        ({"timestamp": "0001-01-01T00:00:00+14:00"}, "timestamp"),
        ({"timestamp": "3001-01-01T00:00:00Z"}, "timestamp"),
        ({"timestamp": {"t": 1}}, "timestamp"),
    ],
)
def test_actioniq_bad_ids_names_and_times_name_the_field(change, field):
    event = {"event_name": "aiq_entered", "external_id": "u-1", "timestamp": 1714644000}
    with pytest.raises(RowError) as caught:
        _aiq([{**event, **change}])
    assert caught.value.field == field and caught.value.row == "events[0]"


def test_extole_event_time_out_of_range_is_a_row_error(extole_case):
    payload = extole_case("shared")
    for bad in (1e20, -1e15, "99999999999999999999", "0001-01-01T00:00:00+14:00"):
        payload["event_time"] = bad
        with pytest.raises(RowError) as caught:
            _map(payload)
        assert caught.value.field == "event_time"


def test_extole_batches_are_one_level_deep_and_name_the_bad_item(extole_case):
    with pytest.raises(RowError) as caught:
        _map([extole_case("shared"), [extole_case("shared")]])
    assert caught.value.row == 1
    deep: list = [extole_case("shared")]
    for _ in range(900):
        deep = [deep]
    with pytest.raises(RowError):
        _map(deep)


def test_extole_amounts_json_cannot_carry_as_numbers_stay_text(extole_case):
    payload = extole_case("reward_fulfilled")
    payload["data"]["face_value"] = "99999999999999999999"
    payload["data"]["cart_value"] = "1.5e400"
    (event,) = _by_kind(_map(payload))["events"]
    assert event["properties"]["face_value"] == "99999999999999999999"
    assert event["properties"]["cart_value"] == "1.5e400"


def test_generic_numeric_ids_become_their_digits_and_objects_are_refused():
    config = StreamConfig.model_validate(
        {"preset": "generic", "auth": {"type": "bearer", "token": "t"},
         "mapping": {"each": "orders", "event_id": "{{ item.id }}",
                     "events": [{"external_id": "{{ item.user }}", "name": "{{ item.kind }}"}]}}
    )  # fmt: skip
    mapped = PRESETS["generic"]({"orders": [{"id": 7, "user": 1001, "kind": 5}]}, "s", config)
    assert mapped.objects[0].obj == {"external_id": "1001", "name": "5"}
    assert mapped.objects[0].partner_id == "7"
    with pytest.raises(RowError) as caught:
        PRESETS["generic"]({"orders": [{"id": {"a": 1}, "user": 1}]}, "s", config)
    assert caught.value.field == "event_id"
