"""Presets turn partner payloads into Braze objects that pass Braze's own validation."""

from __future__ import annotations

import pytest

from headwater.braze.track import (
    validate_attributes_object,
    validate_event_object,
)
from headwater.errors import RowError
from headwater.streams.config import StreamConfig
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
    from headwater.errors import ConfigError
    from headwater.streams.config import parse_streams

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
