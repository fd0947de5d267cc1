"""Braze's profile semantics and data-point counting, from the documented rules."""

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from headwater.braze.profile import (
    apply_attributes,
    apply_event,
    apply_purchase,
    export_profile,
    merge_profile_into,
    new_profile,
)

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def fresh() -> dict:
    profile = new_profile("b-1", NOW)
    profile["external_id"] = "c1"
    return profile


def test_standard_and_custom_attributes_each_cost_one_data_point():
    profile = fresh()
    points = apply_attributes(
        profile,
        {"external_id": "c1", "first_name": "Ada", "email": "ada@example.com", "tier": "gold"},
        now=NOW,
    )
    assert points == 3
    assert profile["first_name"] == "Ada" and profile["custom_attributes"] == {"tier": "gold"}


def test_subscription_state_and_push_tokens_are_free():
    points = apply_attributes(
        fresh(),
        {
            "external_id": "c1",
            "email_subscribe": "opted_in",
            "subscription_groups": [
                {"subscription_group_id": "g", "subscription_state": "subscribed"}
            ],
            "push_tokens": [{"app_id": "app", "token": "tok"}],
        },
        now=NOW,
    )
    assert points == 0


def test_null_removes_an_attribute_and_empty_string_is_kept():
    profile = fresh()
    apply_attributes(profile, {"tier": "gold", "nick": "x", "first_name": "Ada"}, now=NOW)
    apply_attributes(profile, {"tier": None, "nick": "", "first_name": None}, now=NOW)
    assert profile["custom_attributes"] == {"nick": ""}
    assert "first_name" not in profile


def test_increment_starts_from_zero_and_accepts_negative_steps():
    profile = fresh()
    apply_attributes(profile, {"visits": {"inc": 3}}, now=NOW)
    apply_attributes(profile, {"visits": {"inc": -1}}, now=NOW)
    assert profile["custom_attributes"]["visits"] == 2


def test_array_set_collapses_duplicates_and_add_moves_to_the_end():
    profile = fresh()
    assert apply_attributes(profile, {"tags": ["a", "b", "a"]}, now=NOW) == 1
    assert profile["custom_attributes"]["tags"] == ["a", "b"]
    points = apply_attributes(profile, {"tags": {"add": ["a", "c"], "remove": ["b"]}}, now=NOW)
    assert profile["custom_attributes"]["tags"] == ["a", "c"]
    assert points == 3


def test_array_over_its_cap_drops_the_oldest_items():
    profile = fresh()
    apply_attributes(profile, {"tags": ["a", "b", "c"]}, now=NOW, max_array_items=3)
    apply_attributes(profile, {"tags": {"add": ["d"]}}, now=NOW, max_array_items=3)
    assert profile["custom_attributes"]["tags"] == ["b", "c", "d"]


def test_nested_objects_replace_unless_merge_objects_is_set():
    profile = fresh()
    apply_attributes(profile, {"address": {"city": "Leeds", "zip": "LS1"}}, now=NOW)
    apply_attributes(profile, {"address": {"city": "York"}}, now=NOW)
    assert profile["custom_attributes"]["address"] == {"city": "York"}
    apply_attributes(profile, {"_merge_objects": True, "address": {"zip": "YO1"}}, now=NOW)
    assert profile["custom_attributes"]["address"] == {"city": "York", "zip": "YO1"}


def test_nested_time_and_date_strings_are_stored_as_times():
    profile = fresh()
    points = apply_attributes(
        profile,
        {
            "address": {"moved_in": {"$time": "2021-07-01"}, "city": "Leeds"},
            "seen": "2024-05-02 10:00:00",
        },
        now=NOW,
    )
    assert points == 3  # each nested key counts, plus the plain attribute
    attrs = profile["custom_attributes"]
    assert attrs["address"]["moved_in"] == "2021-07-01T00:00:00.000Z"
    assert attrs["seen"] == "2024-05-02T10:00:00.000Z"


def test_arrays_of_objects_add_update_and_remove_by_identifier():
    profile = fresh()
    apply_attributes(profile, {"orders": {"$add": [{"id": 1, "t": 5}, {"id": 2, "t": 6}]}}, now=NOW)
    points = apply_attributes(
        profile,
        {
            "_merge_objects": True,
            "orders": {
                "$update": [
                    {"$identifier_key": "id", "$identifier_value": 2, "$new_object": {"t": 9}}
                ]
            },
        },
        now=NOW,
    )
    assert points == 1
    apply_attributes(
        profile,
        {"orders": {"$remove": [{"$identifier_key": "id", "$identifier_value": 1}]}},
        now=NOW,
    )
    assert profile["custom_attributes"]["orders"] == [{"id": 2, "t": 9}]


def test_country_names_map_to_codes_and_unknown_names_to_null():
    profile = fresh()
    apply_attributes(profile, {"country": "Australia", "gender": "f"}, now=NOW)
    assert profile["country"] == "AU" and profile["gender"] == "F"
    apply_attributes(profile, {"country": "Atlantis"}, now=NOW)
    assert "country" not in profile


def test_invalid_time_zone_is_ignored():
    profile = fresh()
    apply_attributes(profile, {"time_zone": "Europe/Paris"}, now=NOW)
    apply_attributes(profile, {"time_zone": "Mars/Olympus"}, now=NOW)
    assert profile["time_zone"] == "Europe/Paris"


def test_events_and_purchases_summarise_first_last_count_and_revenue():
    profile = fresh()
    apply_event(profile, {"name": "shipped", "time": "2024-05-02T10:00:00Z"}, now=NOW)
    apply_event(profile, {"name": "shipped", "time": "2024-01-01"}, now=NOW)
    future = (NOW + timedelta(days=30)).isoformat()
    apply_event(profile, {"name": "shipped", "time": future}, now=NOW)
    summary = profile["custom_events"]["shipped"]
    assert summary == {
        "first": "2024-01-01T00:00:00.000Z",
        "last": "2024-06-01T12:00:00.000Z",
        "count": 3,
    }
    points = apply_purchase(
        profile,
        {
            "product_id": "P",
            "currency": "USD",
            "price": 10.0,
            "quantity": 3,
            "time": "2024-05-01",
            "properties": {"c": "X"},
        },
        now=NOW,
    )
    assert points == 6  # three purchases of quantity one, each with one property
    assert profile["purchases"]["P"]["count"] == 3 and profile["total_revenue"] == 30.0


def test_export_honours_fields_to_export_and_leaves_out_missing_fields():
    profile = fresh()
    apply_attributes(profile, {"email": "ada@example.com", "tier": "gold"}, now=NOW)
    assert export_profile(
        profile, ["external_id", "email", "custom_attributes", "email_subscribe"]
    ) == {
        "external_id": "c1",
        "email": "ada@example.com",
        "custom_attributes": {"tier": "gold"},
    }
    full = export_profile(profile, None)
    assert full["created_at"] == "2024-06-01 12:00:00.000 UTC"
    assert full["braze_id"] == "b-1" and full["apps"] == []


def test_merge_copies_only_absent_fields_and_sums_counters():
    target, source = fresh(), new_profile("b-2", NOW - timedelta(days=1))
    apply_attributes(target, {"first_name": "Ada", "tier": "gold"}, now=NOW)
    apply_attributes(
        source, {"first_name": "Anon", "last_name": "L", "tier": "silver", "ref": "x"}, now=NOW
    )
    apply_event(target, {"name": "e", "time": "2024-03-01"}, now=NOW)
    apply_event(source, {"name": "e", "time": "2024-02-01"}, now=NOW)
    source["user_aliases"] = [{"alias_name": "anon", "alias_label": "web"}]
    merge_profile_into(target, source)
    assert target["first_name"] == "Ada" and target["last_name"] == "L"
    assert target["custom_attributes"] == {"tier": "gold", "ref": "x"}
    assert target["custom_events"]["e"]["count"] == 2
    assert target["custom_events"]["e"]["first"] == "2024-02-01T00:00:00.000Z"
    assert target["user_aliases"] == [{"alias_name": "anon", "alias_label": "web"}]
    assert target["created_at"] < "2024-06-01"


values = st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), max_size=8)


@given(start=values, add=values, remove=values)
def test_array_operations_behave_as_an_ordered_set(start, add, remove):
    profile = fresh()
    apply_attributes(profile, {"tags": start}, now=NOW)
    apply_attributes(profile, {"tags": {"add": add, "remove": remove}}, now=NOW)
    stored = profile["custom_attributes"]["tags"]
    assert len(stored) == len(set(stored))
    assert set(stored) == (set(start) | set(add)) - set(remove)
    for item in add:
        if item not in remove:
            assert stored.index(item) >= len(stored) - len(set(add) - set(remove))


@given(steps=st.lists(st.integers(min_value=-1000, max_value=1000), max_size=20))
def test_increments_sum(steps):
    profile = fresh()
    for step in steps:
        apply_attributes(profile, {"n": {"inc": step}}, now=NOW)
    assert profile["custom_attributes"].get("n", 0) == sum(steps)


@given(
    first=st.dictionaries(st.sampled_from("abcd"), st.integers(), max_size=4),
    second=st.dictionaries(st.sampled_from("abcd"), st.integers(), max_size=4),
)
def test_merge_objects_deep_merges_and_replace_overwrites(first, second):
    merged, replaced = fresh(), fresh()
    for profile in (merged, replaced):
        apply_attributes(profile, {"o": first}, now=NOW)
    apply_attributes(merged, {"_merge_objects": True, "o": second}, now=NOW)
    apply_attributes(replaced, {"o": second}, now=NOW)
    assert merged["custom_attributes"]["o"] == {**first, **second}
    assert replaced["custom_attributes"]["o"] == second
