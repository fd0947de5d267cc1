"""/users/track validation, written from Braze's documented contract."""

import pytest

from headwater.braze.errors import MSG_MAX_INPUT, MSG_NO_VALID_DATA, BrazeError
from headwater.braze.limits import BatchPolicy
from headwater.braze.track import (
    ObjectError,
    parse_track_request,
    validate_attributes_object,
    validate_event_object,
    validate_purchase_object,
)

EVENT = {"external_id": "c1", "name": "order_shipped", "time": "2024-05-02T10:00:00+00:00"}
PURCHASE = {
    "external_id": "c1",
    "product_id": "Completed Order",
    "currency": "USD",
    "price": 219.98,
    "time": "2024-05-02T10:00:00Z",
}


def attrs(n: int) -> list[dict]:
    return [{"external_id": f"c{i}", "visits": i} for i in range(n)]


def test_success_body_reports_processed_counts_only_for_arrays_sent():
    status, body = parse_track_request({"attributes": attrs(2), "events": [EVENT]}).response()
    assert status == 201
    assert body == {"message": "success", "attributes_processed": 2, "events_processed": 1}


def test_track_reports_bad_email_and_keeps_the_rest():
    request = parse_track_request(
        {"attributes": [{"external_id": "a", "email": "not-an-email"}, {"external_id": "b"}]}
    )
    status, body = request.response()
    assert status == 201
    assert body["attributes_processed"] == 1
    assert body["errors"] == [
        {
            "type": "The value provided for the 'email' field is not a valid email.",
            "input_array": "attributes",
            "index": 0,
        }
    ]
    assert [index for index, _ in request.attributes] == [1]


def test_every_object_invalid_is_a_fatal_400_with_the_errors():
    with pytest.raises(BrazeError) as caught:
        parse_track_request({"attributes": [{"email": "nope"}]})
    assert caught.value.status == 400
    assert caught.value.body()["message"] == MSG_NO_VALID_DATA
    assert caught.value.body()["errors"][0]["input_array"] == "attributes"


@pytest.mark.parametrize("body", [[], "x", {}, {"attributes": []}, {"unknown": [1]}])
def test_bodies_without_data_are_rejected(body):
    with pytest.raises(BrazeError) as caught:
        parse_track_request(body)
    assert caught.value.status == 400


def test_array_field_of_the_wrong_type_is_rejected():
    with pytest.raises(BrazeError, match="'events' must be an array"):
        parse_track_request({"events": {"name": "x"}})


def test_combined_policy_caps_75_objects_across_arrays():
    parse_track_request({"attributes": attrs(50), "events": [EVENT] * 25})
    with pytest.raises(BrazeError) as caught:
        parse_track_request({"attributes": attrs(50), "events": [EVENT] * 26})
    assert caught.value.status == 400 and caught.value.message == MSG_MAX_INPUT


def test_per_kind_policy_allows_75_of_each_kind():
    body = {"attributes": attrs(75), "events": [EVENT] * 75, "purchases": [PURCHASE] * 75}
    assert parse_track_request(body, policy=BatchPolicy.PER_KIND).valid_count == 225
    with pytest.raises(BrazeError):
        parse_track_request({"attributes": attrs(76)}, policy=BatchPolicy.PER_KIND)


@pytest.mark.parametrize(
    "obj, fragment",
    [
        ({"first_name": "x"}, "is required"),
        ({"external_id": "a", "braze_id": "b"}, "Only one of"),
        ({"external_id": ""}, "'external_id'"),
        ({"external_id": 7}, "'external_id'"),
        ({"external_id": "x" * 988}, "EXTERNAL_USER_ID_TOO_LARGE"),
        ({"user_alias": {"alias_name": "a"}}, "'user_alias'"),
        ({"external_id": "a", "email_subscribe": "yes"}, "BAD_EMAIL_SUBSCRIPTION_STATE"),
        ({"external_id": "a", "push_subscribe": 1}, "BAD_PUSH_SUBSCRIPTION_STATE"),
        ({"external_id": "a", "current_location": {"latitude": 1}}, "BAD_LOCATION_UPDATE"),
        ({"external_id": "a", "subscription_groups": {}}, "BAD_SUBSCRIPTION_GROUP_ARRAY"),
        (
            {
                "external_id": "a",
                "subscription_groups": [{"subscription_group_id": "g", "subscription_state": "x"}],
            },
            "BAD_SUBSCRIPTION_GROUP_STATE",
        ),
        ({"external_id": "a", "phone": "call me"}, "'phone'"),
        ({"external_id": "a", "phone": "+1"}, "'phone'"),
        ({"external_id": "a", "dob": "01/04/1990"}, "'dob'"),
        ({"external_id": "a", "gender": "X"}, "'gender'"),
        ({"external_id": "a", "first_name": "x" * 256}, "255"),
        ({"external_id": "a", "note": "x" * 256}, "255"),
        ({"external_id": "a", "$bad": 1}, "must not start with '$'"),
        ({"external_id": "a", "visits": {"inc": "1"}}, "'inc' takes an integer"),
        ({"external_id": "a", "tags": {"add": "vip"}}, "must be an array"),
        ({"external_id": "a", "tags": ["x"] * 501}, "501 items"),
        ({"external_id": "a", "_update_existing_only": "yes"}, "'_update_existing_only'"),
        (
            {
                "external_id": "a",
                "orders": {
                    "$update": [
                        {"$identifier_key": "id", "$identifier_value": 1, "$new_object": {}}
                    ]
                },
            },
            "_merge_objects",
        ),
        ("not an object", "JSON object"),
    ],
)
def test_attribute_objects_braze_rejects(obj, fragment):
    with pytest.raises(ObjectError) as caught:
        validate_attributes_object(obj)
    assert fragment in caught.value.type


@pytest.mark.parametrize(
    "obj",
    [
        {"external_id": "a", "email": "ada@example.com", "phone": "+14155550100"},
        {"user_alias": {"alias_name": "n", "alias_label": "l"}, "_update_existing_only": False},
        {"braze_id": "5fbd99bac125ca40511f2cb1", "first_name": None},
        {"email": "ada@example.com", "loyalty_tier": "gold"},
        {"phone": "+14155550100", "visits": {"inc": -2}},
        {"external_id": "a", "gender": "f", "dob": "1990-04-01", "country": "Australia"},
        {"external_id": "a", "tags": {"add": ["vip"], "remove": ["trial"]}},
        {"external_id": "a", "address": {"city": "Leeds", "moved_in": {"$time": "2021-07-01"}}},
        {"external_id": "a", "orders": {"$add": [{"id": 7, "total": 19.5}]}},
        {
            "external_id": "a",
            "_merge_objects": True,
            "orders": {
                "$update": [
                    {"$identifier_key": "id", "$identifier_value": 7, "$new_object": {"total": 2}}
                ]
            },
        },
        {"external_id": "a", "note": ""},
        {"external_id": "a", "time_zone": "Not/AZone"},
    ],
)
def test_attribute_objects_braze_accepts(obj):
    assert validate_attributes_object(obj) == obj


def test_invalid_nested_value_drops_only_that_attribute():
    obj = {"external_id": "a", "address": {"city": None}, "plan": "gold"}
    assert validate_attributes_object(obj) == {"external_id": "a", "plan": "gold"}
    bad_time = {"external_id": "a", "address": {"moved_in": {"$time": "yesterday"}}}
    assert validate_attributes_object(bad_time) == {"external_id": "a"}


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"name": ""}, "'name'"),
        ({"time": None}, "'time'"),
        ({"time": "last tuesday"}, "'time'"),
        ({"properties": []}, "'properties'"),
        ({"properties": {"time": 1}}, "reserved"),
        ({"properties": {"event_name": 1}}, "reserved"),
        ({"properties": {"$x": 1}}, "'$'"),
        ({"properties": {"s": "x" * 256}}, "255"),
        ({"properties": {"big": ["x" * 200] * 600}}, "KB"),
        ({"app_id": 5}, "'app_id'"),
    ],
)
def test_event_objects_braze_rejects(change, fragment):
    with pytest.raises(ObjectError) as caught:
        validate_event_object({**EVENT, **change})
    assert fragment in caught.value.type


def test_event_without_time_is_rejected():
    event = {k: v for k, v in EVENT.items() if k != "time"}
    with pytest.raises(ObjectError, match="'time' is required"):
        validate_event_object(event)


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"product_id": ""}, "'product_id'"),
        ({"currency": "usd!"}, "ISO 4217"),
        ({"currency": "XXQ"}, "ISO 4217"),
        ({"price": "9.99"}, "'price'"),
        ({"price": True}, "'price'"),
        ({"quantity": 0}, "'quantity'"),
        ({"quantity": 101}, "'quantity'"),
        ({"time": "soon"}, "'time'"),
    ],
)
def test_purchase_objects_braze_rejects(change, fragment):
    with pytest.raises(ObjectError) as caught:
        validate_purchase_object({**PURCHASE, **change})
    assert fragment in caught.value.type


def test_mixed_request_points_each_error_at_its_array_and_index():
    body = {
        "attributes": [{"external_id": "a"}, {"nope": 1}],
        "events": [EVENT, {**EVENT, "name": 3}],
        "purchases": [{**PURCHASE, "quantity": 500}, PURCHASE],
    }
    request = parse_track_request(body)
    assert [(e["input_array"], e["index"]) for e in request.errors] == [
        ("attributes", 1),
        ("events", 1),
        ("purchases", 0),
    ]
    assert request.response()[1]["purchases_processed"] == 1


@pytest.mark.parametrize(
    ("when", "says"),
    [
        (1e20, "not a number"),
        (-1e15, "not a number"),
        ("99999999999999999999", "not a number"),
        ("0001-01-01T00:00:00+14:00", "years 1 to 3000"),
        ("0001-01-01T00:00:00+01:00", "years 1 to 3000"),
        ("2024-02-30T10:00:00Z", "years 1 to 3000"),
        ("soon", "format Braze accepts"),
    ],
)
def test_a_time_braze_cannot_hold_is_a_clear_per_object_error(when, says):
    """The gateway, the sandbox and the client all refuse with this one check, so what
    the gateway accepts the sandbox can always apply."""
    parsed = parse_track_request(
        {
            "events": [
                {"external_id": "a", "name": "e", "time": when},
                {"external_id": "b", "name": "e", "time": "2024-05-02T10:00:00Z"},
            ]
        }
    )
    assert [i for i, _ in parsed.events] == [1]
    (error,) = parsed.errors
    assert (error["input_array"], error["index"]) == ("events", 0)
    assert "'time'" in error["type"] and says in error["type"]
