"""/users/export/ids, /users/alias/new, /users/identify, /users/delete and /users/merge."""

from __future__ import annotations

import pytest

MERGE_ARRAY = "'merge_updates' must be an array of objects"
MERGE_TOO_MANY = "a single request may not contain more than 50 merge updates"
MERGE_IDENTIFIERS = (
    "identifiers must be objects with an 'external_id' property that is a string, "
    "'user_alias' property that is an object, 'email' property that is a string, "
    "or 'phone' property that is a string"
)
MERGE_KEYS = "'merge_updates' must only have 'identifier_to_merge' and 'identifier_to_keep'"


def track(api, *objects):
    response = api.post("/users/track", json={"attributes": list(objects)})
    assert response.status_code == 201, response.text
    return response


def export(api, **body):
    return api.post("/users/export/ids", json=body)


# -- export --------------------------------------------------------------------------


def test_export_returns_found_users_and_lists_unknown_ids(api):
    track(api, {"external_id": "u1", "first_name": "Ada", "email": "ada@example.com",
                "loyalty": "gold"})  # fmt: skip
    response = export(api, external_ids=["u1", "nobody"])
    assert response.status_code == 201
    body = response.json()
    assert body["message"] == "success"
    assert body["invalid_user_ids"] == ["nobody"]
    [user] = body["users"]
    assert user["external_id"] == "u1"
    assert user["first_name"] == "Ada"
    assert user["custom_attributes"] == {"loyalty": "gold"}
    assert user["created_at"].endswith(" UTC")


def test_export_keeps_only_fields_to_export(api):
    track(api, {"external_id": "u1", "first_name": "Ada", "email": "ada@example.com", "x": 1})
    body = export(api, external_ids=["u1"], fields_to_export=["external_id", "email"]).json()
    assert body["users"] == [{"external_id": "u1", "email": "ada@example.com"}]
    assert "invalid_user_ids" not in body


def test_export_rejects_unknown_fields_to_export(api):
    response = export(api, external_ids=["u1"], fields_to_export=["external_id", "password"])
    assert response.status_code == 400
    assert "password" in response.json()["message"]


def test_export_of_more_than_50_ids_is_refused_with_braze_message(api):
    ids = [f"u{i}" for i in range(40)]
    aliases = [{"alias_name": f"a{i}", "alias_label": "l"} for i in range(11)]
    response = export(api, external_ids=ids, user_aliases=aliases)
    assert response.status_code == 400
    assert response.json() == {
        "message": "The max number of external_ids and aliases per request was exceeded"
    }
    assert export(api, external_ids=ids, user_aliases=aliases[:10]).status_code == 201


def test_export_by_email_address_phone_alias_and_braze_id(api, sandbox):
    track(api, {"external_id": "u1", "email": "Ada@Example.com", "phone": "+14155550100"})
    api.post("/users/alias/new", json={"user_aliases": [
        {"external_id": "u1", "alias_name": "a-77", "alias_label": "crm"}]})  # fmt: skip
    braze_id = sandbox.user("u1")["braze_id"]
    for body in (
        {"email_address": "ada@example.com"},
        {"phone": "+14155550100"},
        {"user_aliases": [{"alias_name": "a-77", "alias_label": "crm"}]},
        {"braze_id": braze_id},
    ):
        users = export(api, **body, fields_to_export=["external_id"]).json()["users"]
        assert users == [{"external_id": "u1"}], body


def test_export_allows_only_one_of_device_id_email_address_phone(api):
    response = export(api, email_address="a@example.com", phone="+14155550100")
    assert response.status_code == 400


def test_export_without_any_identifier_is_a_400(api):
    assert export(api, fields_to_export=["external_id"]).status_code == 400


def test_export_lag_fault_hides_new_users_until_it_passes(api, sandbox, clock, monkeypatch):
    # The lag passes when the test says, not when a loaded machine gets round to it.
    monkeypatch.setattr(sandbox.sandbox.users, "clock", clock)
    sandbox.set_faults(export_lag_seconds=0.5)
    track(api, {"external_id": "fresh"})
    clock.advance(0.49)
    body = export(api, external_ids=["fresh"]).json()
    assert body["users"] == []
    assert body["invalid_user_ids"] == ["fresh"]
    clock.advance(0.01)
    assert [u["external_id"] for u in export(api, external_ids=["fresh"]).json()["users"]] == [
        "fresh"
    ]


# -- alias/new --------------------------------------------------------------------------


def test_alias_new_adds_to_an_existing_user_and_creates_alias_only_users(api, sandbox):
    track(api, {"external_id": "u1"})
    response = api.post("/users/alias/new", json={"user_aliases": [
        {"external_id": "u1", "alias_name": "a-77", "alias_label": "crm"},
        {"alias_name": "anon-5", "alias_label": "web"},
        {"external_id": "nobody", "alias_name": "z", "alias_label": "crm"},
    ]})  # fmt: skip
    assert response.status_code == 201
    assert response.json()["message"] == "success"
    assert sandbox.user("u1")["user_aliases"] == [{"alias_name": "a-77", "alias_label": "crm"}]
    anonymous = [u for u in sandbox.users() if u["external_id"] is None]
    assert [u["user_aliases"] for u in anonymous] == [[{"alias_name": "anon-5",
                                                        "alias_label": "web"}]]  # fmt: skip
    assert len(sandbox.users()) == 2  # nothing happens for an unknown external_id


def test_alias_new_keeps_one_alias_name_per_label(api, sandbox):
    track(api, {"external_id": "u1"})
    for name in ("first", "second"):
        api.post("/users/alias/new", json={"user_aliases": [
            {"external_id": "u1", "alias_name": name, "alias_label": "crm"}]})  # fmt: skip
    assert sandbox.user("u1")["user_aliases"] == [{"alias_name": "second", "alias_label": "crm"}]


def test_alias_new_over_50_and_bad_shapes_are_400(api):
    many = [{"alias_name": f"a{i}", "alias_label": "l"} for i in range(51)]
    assert api.post("/users/alias/new", json={"user_aliases": many}).status_code == 400
    assert api.post("/users/alias/new", json={"user_aliases": "x"}).status_code == 400
    assert api.post("/users/alias/new", json={}).status_code == 400


# -- identify ---------------------------------------------------------------------------


def test_identify_merges_alias_profile_into_the_external_id_profile(api, sandbox):
    alias = {"alias_name": "anon-5", "alias_label": "web"}
    track(api, {"user_alias": alias, "_update_existing_only": False, "seen": "yes", "tier": "a"})
    api.post("/users/track", json={"events": [
        {"user_alias": alias, "name": "visit", "time": "2024-01-01"}]})  # fmt: skip
    track(api, {"external_id": "cust-1", "tier": "b"})
    api.post("/users/track", json={"events": [
        {"external_id": "cust-1", "name": "visit", "time": "2024-02-01"}]})  # fmt: skip
    response = api.post("/users/identify", json={
        "aliases_to_identify": [{"external_id": "cust-1", "user_alias": alias}]})  # fmt: skip
    assert response.status_code == 201
    assert response.json() == {"aliases_processed": 1, "message": "success"}
    [user] = sandbox.users()
    assert user["external_id"] == "cust-1"
    assert user["custom_attributes"] == {"tier": "b", "seen": "yes"}  # copied only where absent
    assert user["custom_events"]["visit"]["count"] == 2
    assert user["custom_events"]["visit"]["first"] == "2024-01-01T00:00:00.000Z"
    assert alias in user["user_aliases"]
    assert len(sandbox.user("cust-1")["events"]) == 2  # the anonymous profile's events moved


def test_identify_assigns_the_external_id_when_no_such_user_exists(api, sandbox):
    alias = {"alias_name": "anon-5", "alias_label": "web"}
    track(api, {"user_alias": alias, "_update_existing_only": False, "seen": "yes"})
    api.post("/users/identify", json={
        "aliases_to_identify": [{"external_id": "new-1", "user_alias": alias}]})  # fmt: skip
    assert sandbox.user("new-1")["custom_attributes"] == {"seen": "yes"}


def test_identify_does_not_merge_when_target_has_an_alias_with_the_same_label(api, sandbox):
    track(api, {"external_id": "cust-1"})
    api.post("/users/alias/new", json={"user_aliases": [
        {"external_id": "cust-1", "alias_name": "mine", "alias_label": "web"}]})  # fmt: skip
    alias = {"alias_name": "anon-5", "alias_label": "web"}
    track(api, {"user_alias": alias, "_update_existing_only": False})
    api.post("/users/identify", json={
        "aliases_to_identify": [{"external_id": "cust-1", "user_alias": alias}]})  # fmt: skip
    assert len(sandbox.users()) == 2


def test_identify_unknown_alias_is_a_non_fatal_error(api):
    response = api.post("/users/identify", json={"aliases_to_identify": [
        {"external_id": "c", "user_alias": {"alias_name": "none", "alias_label": "x"}}]})  # fmt: skip
    assert response.status_code == 201
    assert response.json()["errors"][0]["index"] == 0


def test_identify_by_email_follows_prioritization(api, sandbox):
    email = "b@example.com"
    for name in ("older", "newer"):
        track(api, {"user_alias": {"alias_name": name, "alias_label": "l"},
                    "_update_existing_only": False, "email": email, "who": name})  # fmt: skip
    track(api, {"external_id": "cust-2"})
    body = {"emails_to_identify": [{"external_id": "cust-2", "email": email,
                                    "prioritization": ["unidentified", "least_recently_updated"]}]}  # fmt: skip
    assert api.post("/users/identify", json=body).status_code == 201
    assert sandbox.user("cust-2")["custom_attributes"] == {"who": "older"}
    assert len(sandbox.users()) == 2


def test_identify_by_email_needs_valid_prioritization_and_ambiguity_does_nothing(api, sandbox):
    email = "amb@example.com"
    for name in ("one", "two"):
        track(api, {"user_alias": {"alias_name": name, "alias_label": "l"},
                    "_update_existing_only": False, "email": email})  # fmt: skip
    track(api, {"external_id": "cust-3"})
    bad = api.post("/users/identify", json={"emails_to_identify": [
        {"external_id": "cust-3", "email": email,
         "prioritization": ["identified", "unidentified"]}]}).json()  # fmt: skip
    assert bad["errors"][0]["index"] == 0
    api.post("/users/identify", json={"emails_to_identify": [
        {"external_id": "cust-3", "email": email, "prioritization": ["unidentified"]}]})  # fmt: skip
    assert len(sandbox.users()) == 3  # still ambiguous: nothing happened


def test_identify_with_nothing_to_identify_is_a_400(api):
    assert api.post("/users/identify", json={}).status_code == 400


# -- delete -----------------------------------------------------------------------------


def test_delete_by_external_ids_removes_users_and_counts_them(api, sandbox):
    track(api, {"external_id": "a"}, {"external_id": "b"}, {"external_id": "c"})
    response = api.post("/users/delete", json={"external_ids": ["a", "b", "zzz"]})
    assert response.status_code == 201
    assert response.json()["deleted"] == 2
    assert [u["external_id"] for u in sandbox.users()] == ["c"]
    assert export(api, external_ids=["a"]).json()["invalid_user_ids"] == ["a"]


def test_delete_by_alias_braze_id_and_email(api, sandbox):
    alias = {"alias_name": "x", "alias_label": "l"}
    track(api, {"user_alias": alias, "_update_existing_only": False},
          {"external_id": "b"}, {"external_id": "c", "email": "c@example.com"})  # fmt: skip
    braze_id = sandbox.user("b")["braze_id"]
    assert api.post("/users/delete", json={"user_aliases": [alias]}).json()["deleted"] == 1
    assert api.post("/users/delete", json={"braze_ids": [braze_id]}).json()["deleted"] == 1
    body = {"email_addresses": [{"email": "c@example.com", "prioritization": ["identified"]}]}
    assert api.post("/users/delete", json=body).json()["deleted"] == 1
    assert sandbox.users() == []


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"external_ids": ["a"], "braze_ids": ["b"]},
        {"external_ids": "a"},
        {"external_ids": [f"u{i}" for i in range(51)]},
        {"user_aliases": [{"alias_name": 1}]},
    ],
)
def test_delete_bad_requests_are_400(api, body):
    response = api.post("/users/delete", json=body)
    assert response.status_code == 400
    assert response.json()["message"]


# -- merge --------------------------------------------------------------------------------


def test_merge_folds_one_user_into_another(api, sandbox):
    track(api, {"external_id": "old-1", "only_old": 1, "both": "old"},
          {"external_id": "keep", "both": "keep"})  # fmt: skip
    response = api.post("/users/merge", json={"merge_updates": [
        {"identifier_to_merge": {"external_id": "old-1"},
         "identifier_to_keep": {"external_id": "keep"}}]})  # fmt: skip
    assert response.status_code == 202
    assert response.json() == {"message": "success"}
    assert sandbox.user("old-1") is None
    assert sandbox.user("keep")["custom_attributes"] == {"both": "keep", "only_old": 1}


def test_merge_by_email_with_prioritization_into_an_alias(api, sandbox):
    alias = {"alias_name": "a-77", "alias_label": "crm"}
    track(api, {"user_alias": alias, "_update_existing_only": False},
          {"email": "a@example.com", "from_email": True})  # fmt: skip
    api.post("/users/merge", json={"merge_updates": [
        {"identifier_to_merge": {"email": "a@example.com",
                                 "prioritization": ["unidentified", "most_recently_updated"]},
         "identifier_to_keep": {"user_alias": alias}}]})  # fmt: skip
    [user] = sandbox.users()
    assert user["user_aliases"] == [alias]
    assert user["custom_attributes"] == {"from_email": True}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, MERGE_ARRAY),
        ({"merge_updates": "x"}, MERGE_ARRAY),
        ({"merge_updates": [1]}, MERGE_ARRAY),
        (
            {
                "merge_updates": [
                    {
                        "identifier_to_merge": {"external_id": "a"},
                        "identifier_to_keep": {"external_id": "b"},
                    }
                ]
                * 51
            },
            MERGE_TOO_MANY,
        ),  # fmt: skip
        ({"merge_updates": [{"identifier_to_merge": {"external_id": "a"}}]}, MERGE_KEYS),
        (
            {
                "merge_updates": [
                    {
                        "identifier_to_merge": {"external_id": 5},
                        "identifier_to_keep": {"external_id": "b"},
                    }
                ]
            },
            MERGE_IDENTIFIERS,
        ),  # fmt: skip
        (
            {
                "merge_updates": [
                    {
                        "identifier_to_merge": {"user_alias": "x"},
                        "identifier_to_keep": {"external_id": "b"},
                    }
                ]
            },
            MERGE_IDENTIFIERS,
        ),  # fmt: skip
        (
            {
                "merge_updates": [
                    {
                        "identifier_to_merge": {"braze_id": "x"},
                        "identifier_to_keep": {"external_id": "b"},
                    }
                ]
            },
            MERGE_IDENTIFIERS,
        ),  # fmt: skip
    ],
)
def test_merge_bad_requests_get_brazes_documented_messages(api, body, message):
    response = api.post("/users/merge", json=body)
    assert response.status_code == 400
    assert response.json() == {"message": message}


@pytest.mark.parametrize("kind", ["email", "phone"])
def test_delete_and_merge_by_email_or_phone_require_a_prioritization(api, sandbox, kind):
    value = "d@example.com" if kind == "email" else "+14155550123"
    track(api, {"external_id": "d", kind: value})
    array = "email_addresses" if kind == "email" else "phone_numbers"
    for entry in ({kind: value}, {kind: value, "prioritization": []},
                  {kind: value, "prioritization": None}):  # fmt: skip
        refused = api.post("/users/delete", json={array: [entry]})
        assert refused.status_code == 400, entry
        assert "'prioritization'" in refused.json()["message"]
        merge = {"merge_updates": [{"identifier_to_merge": entry,
                                    "identifier_to_keep": {"external_id": "k"}}]}  # fmt: skip
        refused = api.post("/users/merge", json=merge)
        assert refused.status_code == 400, entry
        assert "'prioritization'" in refused.json()["message"]
    assert sandbox.user("d") is not None
    ok = api.post("/users/delete", json={array: [{kind: value, "prioritization": ["identified"]}]})
    assert ok.json()["deleted"] == 1
