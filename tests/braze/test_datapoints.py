"""One data-point price list, Braze's: the sandbox's counters, a sync's run record and its
full-resend comparison, and dedupe's savings all come from headwater.braze.datapoints."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from headwater.braze.datapoints import attribute_data_points, data_points
from headwater.braze.profile import apply_attributes, apply_event, apply_purchase
from headwater.config import SyncConfig
from headwater.engines import DuckDBEngine
from headwater.syncs.engine import full_resend_cost

NOW = datetime(2026, 1, 1, tzinfo=UTC)

RULES = [
    # (attributes object, data points, the rule)
    ({"external_id": "u1", "first_name": "Ada"}, 1, "an attribute set costs one"),
    ({"external_id": "u1", "loyalty": 5, "vip": True}, 2, "one per attribute"),
    ({"external_id": "u1", "old_field": None}, 1, "removing (null) is a set too"),
    ({"external_id": "u1", "email": "a@example.com", "phone": "+33600000000"}, 2,
     "with a primary identifier, email and phone are profile fields"),
    ({"external_id": "u1", "email_subscribe": "opted_in", "push_subscribe": "subscribed",
      "subscription_groups": [{"subscription_group_id": "g", "subscription_state": "subscribed"}],
      "push_tokens": [{"app_id": "a", "token": "t"}]}, 0,
     "subscription states, groups and push tokens are free"),
    ({"external_id": "u1", "bio": "ignored"}, 0, "bio is ignored by Braze"),
    ({"user_alias": {"alias_name": "a", "alias_label": "l"}, "_update_existing_only": False,
      "_merge_objects": True}, 0, "identifiers and control keys are free"),
    ({"external_id": "u1", "tags": ["a", "b", "c"]}, 1, "a whole array set at once is one"),
    ({"external_id": "u1", "tags": {"add": ["a", "b"], "remove": ["c"]}}, 3,
     "add and remove cost one per value"),
    ({"external_id": "u1", "visits": {"inc": 3}}, 1, "an increment is one set"),
    ({"external_id": "u1", "address": {"city": "Leeds", "geo": {"lat": 1, "lon": 2}}}, 3,
     "a nested object costs one per (leaf) key"),
    ({"external_id": "u1", "address": {"moved_in": {"$time": "2021-07-01"}}}, 1,
     "a $time value is one value"),
    ({"external_id": "u1", "pets": [{"id": 1, "name": "Rex"}, {"id": 2, "name": "Tom"}]}, 4,
     "an array of objects costs one per property of every object"),
    ({"external_id": "u1", "pets": {"$add": [{"id": 3, "name": "Bo"}],
                                    "$remove": [{"$identifier_key": "id",
                                                 "$identifier_value": 1}]}}, 3,
     "$add per property, $remove per object"),
]  # fmt: skip


@pytest.mark.parametrize(("obj", "points", "rule"), RULES, ids=[r[2] for r in RULES])
def test_attribute_objects_cost_what_braze_bills(obj, points, rule):
    assert data_points("attributes", obj) == points, rule
    # The sandbox counts by the same function: applying the object costs the same.
    assert apply_attributes({"custom_attributes": {}}, obj, now=NOW) == points, rule


def test_update_costs_only_the_properties_that_change_when_the_stored_value_is_known():
    stored = [{"id": 1, "name": "Rex", "age": 3}]
    update = {"$update": [{"$identifier_key": "id", "$identifier_value": 1,
                           "$new_object": {"name": "Rex", "age": 4}}]}  # fmt: skip
    assert attribute_data_points("pets", update, stored) == 1
    assert attribute_data_points("pets", update) == 2  # unknown: every property may change
    profile = {"custom_attributes": {"pets": stored}}
    assert apply_attributes(profile, {"external_id": "u", "_merge_objects": True,
                                      "pets": update}, now=NOW) == 1  # fmt: skip


def test_events_and_purchases_cost_what_braze_bills():
    event = {"external_id": "u1", "name": "e", "time": "2024-05-02", "properties": {"a": 1}}
    assert data_points("events", event) == 1 == apply_event({}, event, now=NOW)
    purchase = {"external_id": "u1", "product_id": "p", "currency": "USD", "price": 1.0,
                "time": "2024-05-02", "quantity": 3, "properties": {"a": 1, "b": 2}}  # fmt: skip
    assert data_points("purchases", purchase) == 9  # 3 purchases x (1 + 2 properties)
    assert apply_purchase({}, purchase, now=NOW) == 9


def test_a_full_resend_is_priced_by_the_same_rules_in_the_engine():
    engine = DuckDBEngine()
    engine.execute(
        "CREATE TABLE m AS SELECT * FROM (VALUES "
        "('u1', 'a@example.com', 'opted_in', 5, '{\"city\": \"Leeds\", \"zip\": \"LS1\"}'), "
        "('u2', NULL, 'opted_in', NULL, NULL)) AS t(id, email, sub, points, address)"
    )
    sync = SyncConfig.model_validate({
        "model": "m", "destination": "braze", "identifier": {"external_id": "id"},
        "mapping": {"email": "email", "email_subscribe": "sub", "points": "points",
                    "address": "address"},
    })  # fmt: skip
    rows = [
        {"external_id": "u1", "email": "a@example.com", "email_subscribe": "opted_in",
         "points": 5, "address": {"city": "Leeds", "zip": "LS1"}},
        {"external_id": "u2", "email_subscribe": "opted_in"},
    ]  # fmt: skip
    expected = sum(data_points("attributes", row) for row in rows)
    assert expected == 4
    assert full_resend_cost(engine, "m", sync, frozenset({"address"})) == expected


def test_a_full_purchase_resend_counts_quantity_and_properties():
    engine = DuckDBEngine()
    engine.execute(
        "CREATE TABLE o AS SELECT * FROM (VALUES ('u1', 'p', 9.5, 2, 'x', NULL), "
        "('u2', 'p', 1.0, NULL, 'y', 'z')) AS t(id, product, price, qty, a, b)"
    )
    sync = SyncConfig.model_validate({
        "type": "purchases", "model": "o", "destination": "braze",
        "identifier": {"external_id": "id"},
        "purchase": {"product_id": "product", "price": "price", "currency": "USD",
                     "quantity": "qty", "properties": {"a": "a", "b": "b"}},
    })  # fmt: skip
    assert full_resend_cost(engine, "o", sync) == 2 * (1 + 1) + 1 * (1 + 2)
