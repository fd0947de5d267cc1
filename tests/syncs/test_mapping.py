"""Model rows become Braze objects; bad rows become RowErrors naming the column."""

from datetime import UTC, datetime

import pytest

from headwater.config import SyncConfig
from headwater.errors import RowError
from headwater.syncs.mapping import (
    attributes_object,
    event_object,
    mapping_problems,
    purchase_object,
    unset_object,
)

NOW = datetime(2024, 6, 1, tzinfo=UTC)


def sync(**overrides) -> SyncConfig:
    base = {
        "model": "contacts",
        "destination": "braze",
        "identifier": {"external_id": "customer_id"},
        "mapping": {"email": "email", "loyalty_points": "points", "signed_up_at": "signed"},
    }
    return SyncConfig.model_validate(base | overrides)


ROW = {
    "customer_id": "C1",
    "email": "ada@example.com",
    "points": 7,
    "signed": datetime(2024, 1, 2, 3, 4, 5),
}


def test_a_row_becomes_an_attributes_object_with_times_in_braze_format():
    assert attributes_object(sync(), ROW) == {
        "external_id": "C1",
        "email": "ada@example.com",
        "loyalty_points": 7,
        "signed_up_at": "2024-01-02T03:04:05.000Z",
    }


def test_only_the_named_fields_are_sent_and_null_unsets():
    obj = attributes_object(sync(), {**ROW, "points": None}, ["loyalty_points"])
    assert obj == {"external_id": "C1", "loyalty_points": None}


def test_update_mode_only_touches_existing_users():
    assert attributes_object(sync(mode="update"), ROW)["_update_existing_only"] is True


def test_alias_identifier_creates_alias_profiles_explicitly():
    s = sync(identifier={"user_alias": {"name": "customer_id", "label": "crm"}})
    obj = attributes_object(s, ROW, [])
    assert obj == {
        "user_alias": {"alias_name": "C1", "alias_label": "crm"},
        "_update_existing_only": False,
    }


def test_unset_nulls_every_mapped_attribute_of_existing_users_only():
    obj = unset_object(sync(), ROW)
    assert obj == {
        "external_id": "C1",
        "_update_existing_only": True,
        "email": None,
        "loyalty_points": None,
        "signed_up_at": None,
    }


def test_bad_email_is_a_row_error_naming_the_model_column():
    with pytest.raises(RowError) as caught:
        attributes_object(
            sync(mapping={"email": "contact_email"}), {"customer_id": "C1", "contact_email": "nope"}
        )
    assert caught.value.field == "contact_email"
    assert "not a valid email" in caught.value.reason


def test_missing_identifier_is_a_row_error():
    with pytest.raises(RowError, match="identifier is missing"):
        attributes_object(sync(), {**ROW, "customer_id": None})


def test_event_rows_become_events_with_properties():
    s = sync(
        type="events",
        mapping={},
        event={"name": "reward_earned", "time": "at", "properties": {"value": "v"}},
    )
    obj = event_object(
        s, {"customer_id": "C1", "at": datetime(2024, 5, 1, tzinfo=UTC), "v": 5.0}, NOW
    )
    assert obj == {
        "external_id": "C1",
        "name": "reward_earned",
        "time": "2024-05-01T00:00:00.000Z",
        "properties": {"value": 5.0},
    }


def test_purchase_rows_need_a_valid_price():
    s = sync(
        type="purchases",
        mapping={},
        purchase={"product_id": "p", "price": "price", "currency": "USD"},
    )
    assert purchase_object(s, {"customer_id": "C1", "p": "shoe", "price": 9.5}, NOW)["price"] == 9.5
    with pytest.raises(RowError) as caught:
        purchase_object(s, {"customer_id": "C1", "p": "shoe", "price": None}, NOW)
    assert caught.value.field == "price"


def test_mapping_to_a_dollar_name_is_a_config_problem():
    assert mapping_problems(sync(mapping={"$bad": "email"})) == [
        "mapping.$bad: attribute name '$bad' must not start with '$'"
    ]
