"""POST /users/track against a real sandbox socket, checked against Braze's documented rules."""

from __future__ import annotations

import pytest

from headwater.sandbox.testing import run_sandbox

NOT_FOUND = None


def track(api, **arrays):
    return api.post("/users/track", json=arrays)


def test_track_creates_a_profile_on_first_write_and_reports_processed_counts(api, sandbox):
    response = track(api, attributes=[{"external_id": "u1", "first_name": "Ada"}])
    assert response.status_code == 201
    assert response.json() == {"message": "success", "attributes_processed": 1}
    user = sandbox.user("u1")
    assert user["first_name"] == "Ada"
    assert user["braze_id"]


def test_processed_keys_appear_only_for_arrays_that_were_sent(api):
    body = track(
        api,
        attributes=[{"external_id": "u1", "a": 1}],
        events=[{"external_id": "u1", "name": "e", "time": "2024-05-02T10:00:00Z"}],
    ).json()
    assert body == {"message": "success", "attributes_processed": 1, "events_processed": 1}


def test_update_existing_only_true_with_external_id_does_not_create(api, sandbox):
    response = track(
        api, attributes=[{"external_id": "ghost", "_update_existing_only": True, "a": 1}]
    )
    assert response.status_code == 201
    assert sandbox.user("ghost") is NOT_FOUND
    track(api, attributes=[{"external_id": "real", "a": 1}])
    track(api, attributes=[{"external_id": "real", "_update_existing_only": True, "a": 2}])
    assert sandbox.user("real")["custom_attributes"]["a"] == 2


def test_user_alias_creates_only_when_update_existing_only_is_explicitly_false(api, sandbox):
    alias = {"alias_name": "anon-1", "alias_label": "web"}
    track(api, attributes=[{"user_alias": alias, "seen": True}])
    assert sandbox.users() == []
    track(api, attributes=[{"user_alias": alias, "_update_existing_only": True, "seen": True}])
    assert sandbox.users() == []
    track(api, attributes=[{"user_alias": alias, "_update_existing_only": False, "seen": True}])
    [user] = sandbox.users()
    assert user["user_aliases"] == [alias]
    assert user["external_id"] is None
    # once it exists, the alias resolves without the flag
    track(api, attributes=[{"user_alias": alias, "visits": 3}])
    [user] = sandbox.users()
    assert user["custom_attributes"] == {"seen": True, "visits": 3}


def test_braze_id_never_creates_a_profile_but_updates_an_existing_one(api, sandbox):
    track(api, attributes=[{"braze_id": "5fbd99bac125ca40511f2cb1", "a": 1}])
    assert sandbox.users() == []
    track(api, attributes=[{"external_id": "u1"}])
    braze_id = sandbox.user("u1")["braze_id"]
    track(api, attributes=[{"braze_id": braze_id, "a": 2}])
    assert sandbox.user("u1")["custom_attributes"]["a"] == 2


def test_unmatched_email_creates_an_email_only_profile(api, sandbox):
    track(api, attributes=[{"email": "solo@example.com", "a": 1}])
    [user] = sandbox.users()
    assert user["email"] == "solo@example.com"
    assert user["external_id"] is None
    assert user["user_aliases"] == []


def test_email_lookup_prefers_most_recently_updated_profile_with_external_id(api, sandbox):
    email = "shared@example.com"
    track(api, attributes=[{"external_id": "old", "email": email}])
    track(api, attributes=[{"external_id": "new", "email": email}])
    track(api, attributes=[{"email": "other@example.com"}])
    # an anonymous profile with the same email, updated last, does not win
    track(api, attributes=[{"user_alias": {"alias_name": "x", "alias_label": "l"},
                            "_update_existing_only": False, "email": email}])  # fmt: skip
    track(api, attributes=[{"external_id": "old", "touch": 1}])  # "old" is now most recent
    track(api, attributes=[{"email": email, "picked": True}])
    assert sandbox.user("old")["custom_attributes"].get("picked") is True
    assert "picked" not in sandbox.user("new")["custom_attributes"]


def test_email_lookup_without_identified_profiles_picks_most_recently_updated(api, sandbox):
    alias_a = {"alias_name": "a", "alias_label": "l"}
    alias_b = {"alias_name": "b", "alias_label": "l"}
    for alias in (alias_a, alias_b):
        track(api, attributes=[{"user_alias": alias, "_update_existing_only": False,
                                "email": "anon@example.com"}])  # fmt: skip
    track(api, attributes=[{"user_alias": alias_a, "touch": 1}])
    track(api, attributes=[{"email": "anon@example.com", "picked": True}])
    users = {u["user_aliases"][0]["alias_name"]: u for u in sandbox.users()}
    assert users["a"]["custom_attributes"].get("picked") is True
    assert "picked" not in users["b"]["custom_attributes"]
    assert len(users) == 2  # no new profile


def test_phone_lookup_works_like_email_and_email_wins_over_phone(api, sandbox):
    track(api, attributes=[{"external_id": "p", "phone": "+14155550100"}])
    track(api, attributes=[{"external_id": "e", "email": "e@example.com"}])
    track(api, attributes=[{"phone": "+14155550100", "by_phone": 1}])
    assert sandbox.user("p")["custom_attributes"]["by_phone"] == 1
    track(api, attributes=[{"email": "e@example.com", "phone": "+14155550100", "both": 1}])
    assert sandbox.user("e")["custom_attributes"]["both"] == 1
    assert "both" not in sandbox.user("p")["custom_attributes"]


def test_unmatched_external_id_creates_a_new_profile_even_when_email_matches(api, sandbox):
    track(api, attributes=[{"external_id": "first", "email": "dup@example.com"}])
    track(api, attributes=[{"external_id": "second", "email": "dup@example.com"}])
    assert {u["external_id"] for u in sandbox.users()} == {"first", "second"}


def test_array_add_remove_and_whole_array_set(api, sandbox):
    track(api, attributes=[{"external_id": "u", "tags": ["a", "b", "a"]}])
    assert sandbox.user("u")["custom_attributes"]["tags"] == ["a", "b"]
    track(api, attributes=[{"external_id": "u", "tags": {"add": ["c", "a"], "remove": ["b"]}}])
    assert sandbox.user("u")["custom_attributes"]["tags"] == ["c", "a"]


def test_array_past_its_cap_drops_the_oldest_items():
    with run_sandbox(max_array_items=3) as sb:
        headers = {"Authorization": f"Bearer {sb.key}"}
        import httpx

        with httpx.Client(base_url=sb.url, headers=headers) as api:
            track(api, attributes=[{"external_id": "u", "tags": ["a", "b", "c"]}])
            track(api, attributes=[{"external_id": "u", "tags": {"add": ["d"]}}])
        assert sb.user("u")["custom_attributes"]["tags"] == ["b", "c", "d"]


def test_increment_adds_to_a_number_and_starts_from_zero(api, sandbox):
    track(api, attributes=[{"external_id": "u", "visits": {"inc": 2}}])
    track(api, attributes=[{"external_id": "u", "visits": {"inc": 5}}])
    track(api, attributes=[{"external_id": "u", "visits": {"inc": -1}}])
    assert sandbox.user("u")["custom_attributes"]["visits"] == 6


def test_null_removes_an_attribute_and_empty_string_is_kept(api, sandbox):
    track(api, attributes=[{"external_id": "u", "a": "x", "b": "y"}])
    track(api, attributes=[{"external_id": "u", "a": None, "b": ""}])
    assert sandbox.user("u")["custom_attributes"] == {"b": ""}


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("2024-05-02T10:00:00Z", "2024-05-02T10:00:00.000Z"),
        ("2013-07-16T19:20:30+01:00", "2013-07-16T18:20:30.000Z"),
        ("2024-05-02", "2024-05-02T00:00:00.000Z"),
        ("2024-05-02 10:00:00", "2024-05-02T10:00:00.000Z"),
        ("12/1/2021", "2021-12-01T00:00:00.000Z"),
        ("3500-01-01", "3500-01-01"),  # year > 3000 stays a string
        ("not a date", "not a date"),
    ],
)
def test_date_like_strings_are_stored_as_times(api, sandbox, sent, stored):
    track(api, attributes=[{"external_id": "u", "when": sent}])
    assert sandbox.user("u")["custom_attributes"]["when"] == stored


def test_nested_objects_replace_unless_merge_objects_is_true(api, sandbox):
    track(api, attributes=[{"external_id": "u", "address": {"city": "Leeds", "zip": "LS1",
                            "moved_in": {"$time": "2021-07-01"}}}])  # fmt: skip
    assert sandbox.user("u")["custom_attributes"]["address"]["moved_in"] == (
        "2021-07-01T00:00:00.000Z"
    )
    track(api, attributes=[{"external_id": "u", "address": {"city": "York"}}])
    assert sandbox.user("u")["custom_attributes"]["address"] == {"city": "York"}
    track(api, attributes=[{"external_id": "u", "_merge_objects": True,
                            "address": {"zip": "YO1"}}])  # fmt: skip
    assert sandbox.user("u")["custom_attributes"]["address"] == {"city": "York", "zip": "YO1"}


def test_invalid_nested_value_drops_that_attribute_only(api, sandbox):
    response = track(api, attributes=[{"external_id": "u", "ok": 1, "bad": {"a": None}}])
    assert response.status_code == 201
    assert sandbox.user("u")["custom_attributes"] == {"ok": 1}


def test_array_of_objects_add_update_remove(api, sandbox):
    track(api, attributes=[{"external_id": "u", "orders": {"$add": [{"id": 1, "t": 5},
                                                                     {"id": 2, "t": 7}]}}])  # fmt: skip
    track(api, attributes=[{"external_id": "u", "_merge_objects": True, "orders": {"$update": [
        {"$identifier_key": "id", "$identifier_value": 2, "$new_object": {"t": 9}}]}}])  # fmt: skip
    assert sandbox.user("u")["custom_attributes"]["orders"] == [
        {"id": 1, "t": 5},
        {"id": 2, "t": 9},
    ]
    track(api, attributes=[{"external_id": "u", "orders": {"$remove": [
        {"$identifier_key": "id", "$identifier_value": 1}]}}])  # fmt: skip
    assert sandbox.user("u")["custom_attributes"]["orders"] == [{"id": 2, "t": 9}]


def test_update_of_object_array_without_merge_objects_is_a_per_object_error(api, sandbox):
    body = track(api, attributes=[
        {"external_id": "u", "orders": {"$update": [
            {"$identifier_key": "id", "$identifier_value": 2, "$new_object": {"t": 9}}]}},
        {"external_id": "v", "a": 1},
    ]).json()  # fmt: skip
    assert body["attributes_processed"] == 1
    assert [(e["input_array"], e["index"]) for e in body["errors"]] == [("attributes", 0)]
    assert sandbox.user("u") is NOT_FOUND


def test_standard_fields_are_normalised(api, sandbox):
    track(api, attributes=[{"external_id": "u", "country": "Australia", "gender": "female",
                            "time_zone": "Not/AZone", "dob": "1990-04-01",
                            "current_location": {"longitude": 1.5, "latitude": 50.0}}])  # fmt: skip
    user = sandbox.user("u")
    assert user["country"] == "AU"
    assert user["gender"] == "F"
    assert "time_zone" not in user
    assert user["dob"] == "1990-04-01"
    assert user["last_coordinates"] == [1.5, 50.0]


def test_events_and_purchases_are_stored_and_summarised(api, sandbox):
    events = [
        {"external_id": "u", "name": "shipped", "time": "2024-05-02T10:00:00Z",
         "properties": {"carrier": "DHL"}},
        {"external_id": "u", "name": "shipped", "time": "2024-05-01T10:00:00Z"},
        {"external_id": "u", "name": "shipped", "time": "2999-01-01T00:00:00Z"},  # future: now
    ]  # fmt: skip
    purchases = [{"external_id": "u", "product_id": "sku", "currency": "USD", "price": 2.5,
                  "quantity": 3, "time": "2024-05-02T10:00:00Z"}]  # fmt: skip
    body = track(api, events=events, purchases=purchases).json()
    assert body == {"message": "success", "events_processed": 3, "purchases_processed": 1}
    user = sandbox.user("u")
    summary = user["custom_events"]["shipped"]
    assert summary["count"] == 3
    assert summary["first"] == "2024-05-01T10:00:00.000Z"
    assert summary["last"] < "2999"
    assert user["purchases"]["sku"]["count"] == 3  # quantity 3 = three purchases
    assert user["total_revenue"] == 7.5
    assert [e["name"] for e in user["events"]] == ["shipped"] * 3
    assert user["events"][0]["properties"] == {"carrier": "DHL"}
    assert [p["product_id"] for p in user["purchase_log"]] == ["sku"]


def test_one_bad_object_is_reported_and_the_rest_are_processed(api, sandbox):
    body = track(
        api,
        attributes=[
            {"external_id": "good", "a": 1},
            {"a": 1},  # no identifier
            {"external_id": "x", "braze_id": "y"},  # two primary identifiers
            {"external_id": "bad-email", "email": "not-an-email"},
            {"external_id": "bad-phone", "phone": "call me"},
            {"external_id": "x" * 988},
            {"external_id": "long", "s": "x" * 256},
        ],
        events=[{"external_id": "good", "name": "e"}],  # no time
        purchases=[
            {
                "external_id": "good",
                "product_id": "p",
                "currency": "XXX",
                "price": 1,
                "time": "2024-01-01",
            }
        ],  # fmt: skip
    ).json()
    assert body["attributes_processed"] == 1
    assert body["events_processed"] == 0
    assert body["purchases_processed"] == 0
    where = [(e["input_array"], e["index"]) for e in body["errors"]]
    assert where == [("attributes", i) for i in range(1, 7)] + [("events", 0), ("purchases", 0)]
    assert "email" in body["errors"][2]["type"]
    assert "EXTERNAL_USER_ID_TOO_LARGE" in body["errors"][4]["type"]
    assert [u["external_id"] for u in sandbox.users()] == ["good"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"attributes": []},
        {"attributes": "nope"},
        {"events": {"name": "e"}},
        {"attributes": [{"a": 1}]},
        [{"external_id": "u"}],
    ],
)
def test_nothing_valid_is_a_fatal_400(api, sandbox, body):
    response = api.post("/users/track", json=body)
    assert response.status_code == 400
    assert response.json()["message"]
    assert sandbox.users() == []


def test_all_invalid_objects_give_400_with_per_object_errors(api):
    response = track(api, attributes=[{"external_id": "u", "email": "bad"}])
    assert response.status_code == 400
    body = response.json()
    assert body["message"] == (
        "Valid data must be provided in the 'attributes', 'events', or 'purchases' fields."
    )
    assert body["errors"][0]["input_array"] == "attributes"
    assert body["errors"][0]["index"] == 0


def _objects(n: int, kind: str) -> list[dict]:
    if kind == "attributes":
        return [{"external_id": f"u{i}", "a": i} for i in range(n)]
    return [{"external_id": f"u{i}", "name": "e", "time": "2024-01-01"} for i in range(n)]


def test_combined_policy_caps_all_arrays_together_at_75(api, sandbox):
    ok = track(api, attributes=_objects(40, "attributes"), events=_objects(35, "events"))
    assert ok.status_code == 201
    over = track(api, attributes=_objects(40, "attributes"), events=_objects(36, "events"))
    assert over.status_code == 400
    assert over.json() == {"message": "Max Input Length Exceeded"}


def test_per_kind_policy_allows_75_of_each_kind():
    import httpx

    with run_sandbox(batch_policy="per_kind") as sb:
        headers = {"Authorization": f"Bearer {sb.key}"}
        with httpx.Client(base_url=sb.url, headers=headers) as api:
            ok = track(api, attributes=_objects(75, "attributes"), events=_objects(75, "events"))
            assert ok.status_code == 201
            assert ok.json()["attributes_processed"] == 75
            assert ok.json()["events_processed"] == 75
            over = track(api, attributes=_objects(76, "attributes"))
            assert over.status_code == 400
            assert over.json()["message"] == "Max Input Length Exceeded"


# ---- times the contract cannot hold, and objects the sandbox cannot apply ------------------

OUT_OF_RANGE_TIMES = [
    "0001-01-01T00:00:00+01:00",  # year 0 in UTC: was an OverflowError and a 500
    "0001-01-01T00:00:00+14:00",
    "3000-12-31T23:00:00-05:00",  # year 3001 in UTC
]
NUMERIC_TIMES = [1e20, -1e15, "99999999999999999999", 1714644000]


@pytest.mark.parametrize("when", OUT_OF_RANGE_TIMES + NUMERIC_TIMES)
def test_an_event_time_braze_cannot_hold_is_that_events_error_and_its_neighbour_counts_once(
    api, sandbox, when
):
    good = {"external_id": "good", "name": "e", "time": "2024-05-02T10:00:00Z"}
    bad = {"external_id": "bad", "name": "e", "time": when}
    purchase = {"external_id": "bad", "product_id": "p", "currency": "USD", "price": 1,
                "time": when}  # fmt: skip
    response = track(api, events=[bad, good], purchases=[purchase])
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["events_processed"] == 1 and body["purchases_processed"] == 0
    assert [(e["input_array"], e["index"]) for e in body["errors"]] == [
        ("events", 0),
        ("purchases", 0),
    ]
    assert "'time'" in body["errors"][0]["type"]
    assert sandbox.user("good")["custom_events"]["e"]["count"] == 1
    assert sandbox.user("bad") is NOT_FOUND


@pytest.mark.parametrize("when", OUT_OF_RANGE_TIMES)
def test_attribute_times_braze_cannot_hold_never_answer_500(api, sandbox, when):
    response = track(
        api,
        attributes=[
            {"external_id": "u", "when": when},  # a string that is not a time stays a string
            {"external_id": "u", "date_of_first_session": when},  # a date field: refused
            {"external_id": "u", "moved": {"at": {"$time": when}}},  # dropped, as Braze does
        ],
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert [(e["input_array"], e["index"]) for e in body["errors"]] == [("attributes", 1)]
    attributes = sandbox.user("u")["custom_attributes"]
    assert attributes["when"] == when
    assert "moved" not in attributes


def test_an_object_the_sandbox_fails_to_apply_is_its_own_error_not_a_500(api, sandbox, monkeypatch):
    """Whatever goes wrong applying one object, its neighbours are applied once and the
    answer says which object failed: a 500 would make the caller send them all again."""
    from headwater.sandbox.users import models

    real = models.apply_event

    def breaks_on_boom(profile, event, *, now):
        if event["name"] == "boom":
            raise OverflowError("date value out of range")
        return real(profile, event, now=now)

    monkeypatch.setattr(models, "apply_event", breaks_on_boom)
    when = "2024-05-02T10:00:00Z"
    response = track(
        api,
        events=[
            {"external_id": "u", "name": "fine", "time": when},
            {"external_id": "u", "name": "boom", "time": when},
            {"external_id": "v", "name": "fine", "time": when},
        ],
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["events_processed"] == 2
    (error,) = body["errors"]
    assert (error["input_array"], error["index"]) == ("events", 1)
    assert "OverflowError" in error["type"]
    assert sandbox.user("u")["custom_events"] == {
        "fine": {"first": "2024-05-02T10:00:00.000Z", "last": "2024-05-02T10:00:00.000Z",
                 "count": 1}
    }  # fmt: skip
    assert sandbox.user("v")["custom_events"]["fine"]["count"] == 1
