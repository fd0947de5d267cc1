"""The /_sandbox control API, data-point counters and persistence across restarts."""

from __future__ import annotations

import httpx

from headwater.sandbox.testing import run_sandbox


def test_data_points_follow_brazes_counting_rules(sandbox, api):
    api.post("/users/track", json={
        "attributes": [{
            "external_id": "u1",
            "first_name": "Ada",                  # standard field: 1
            "email_subscribe": "opted_in",        # subscription state: free
            "tier": "gold",                       # custom: 1
            "tags": {"add": ["a", "b", "c"]},     # add: 1 per value = 3
            "whole": ["x", "y"],                  # whole array: 1
            "address": {"city": "L", "zip": "1"}, # nested: 1 per key = 2
            "gone": None,                         # null: 1
        }],
        "events": [{"external_id": "u1", "name": "e", "time": "2024-01-01"}],   # 1
        "purchases": [{"external_id": "u1", "product_id": "p", "currency": "USD",
                       "price": 1, "quantity": 2, "time": "2024-01-01",
                       "properties": {"a": 1}}],   # 2 x (1 + 1 property) = 4
    })  # fmt: skip
    counters = sandbox.counters()
    assert counters["data_points"] == 1 + 1 + 3 + 1 + 2 + 1 + 1 + 4
    assert counters["data_points_by_key"] == {"default": 14}
    by_attribute = counters["data_points_by_attribute"]
    assert by_attribute["tags"] == 3
    assert by_attribute["address"] == 2
    assert by_attribute["first_name"] == 1
    assert "email_subscribe" not in by_attribute
    assert by_attribute["purchase:p"] == 4
    assert by_attribute["event:e"] == 1
    # re-sending an unchanged value still counts ("face value")
    api.post("/users/track", json={"attributes": [{"external_id": "u1", "tier": "gold"}]})
    assert sandbox.counters()["data_points_by_attribute"]["tier"] == 2


def test_data_points_are_counted_per_key(sandbox, api):
    other = sandbox.sandbox.keys.create("partner", ["users.track"])
    api.post("/users/track", json={"attributes": [{"external_id": "u1", "a": 1, "b": 2}]})
    httpx.post(f"{sandbox.url}/users/track", headers={"Authorization": f"Bearer {other}"},
               json={"attributes": [{"external_id": "u1", "a": 3}]})  # fmt: skip
    assert sandbox.counters()["data_points_by_key"] == {"default": 2, "partner": 1}


def test_refused_requests_spend_no_data_points(sandbox, api):
    api.post("/users/track", json={"attributes": [{"external_id": "u1", "email": "bad"}]})
    httpx.post(f"{sandbox.url}/users/track", json={"attributes": [{"external_id": "u", "a": 1}]})
    assert sandbox.counters()["data_points"] == 0


def test_control_lists_users_with_paging_and_gets_one_with_events(sandbox, api):
    api.post("/users/track", json={
        "attributes": [{"external_id": f"u{i}"} for i in range(5)],
        "events": [{"external_id": "u1", "name": "e", "time": "2024-01-01"}]})  # fmt: skip
    listing = httpx.get(f"{sandbox.url}/_sandbox/users", params={"limit": 2, "offset": 1}).json()
    assert listing["total"] == 5
    assert len(listing["users"]) == 2
    user = sandbox.user("u1")
    assert [e["name"] for e in user["events"]] == ["e"]
    assert sandbox.user(user["braze_id"])["external_id"] == "u1"
    assert httpx.get(f"{sandbox.url}/_sandbox/users/nobody").status_code == 404
    assert httpx.get(f"{sandbox.url}/_sandbox/users", params={"limit": 0}).status_code == 400


def test_reset_empties_users_and_counters_but_keeps_keys(sandbox, api):
    api.post("/users/track", json={"attributes": [{"external_id": "u1", "a": 1}]})
    sandbox.reset()
    assert sandbox.users() == []
    assert sandbox.counters()["data_points"] == 0
    assert api.post("/users/track", json={"attributes": [{"external_id": "u", "a": 1}]}
                    ).status_code == 201  # fmt: skip


def test_seed_loads_users_without_spending_rate_budget(sandbox, api):
    sandbox.set_rate_limit("users.track", 1, 3600)
    try:
        answer = sandbox.seed(attributes=[{"external_id": f"s{i}", "v": i} for i in range(100)],
                              segments=[{"id": "seg-1", "name": "Seeded"}])  # fmt: skip
        assert answer == {"seeded": 100, "segments": 1}
        assert len(sandbox.users()) == 100
        assert api.get("/segments/list").json()["segments"][0]["id"] == "seg-1"
        bad = httpx.post(f"{sandbox.url}/_sandbox/seed", json={"attributes": [{"x": 1}]})
        assert bad.status_code == 400
    finally:
        sandbox.set_rate_limit("users.track", 3000, 3)


def test_control_token_protects_the_control_api():
    with run_sandbox(control_token="ctl-secret") as sb:
        assert httpx.get(f"{sb.url}/_sandbox/counters").status_code == 401
        ok = httpx.get(f"{sb.url}/_sandbox/counters",
                       headers={"Authorization": "Bearer ctl-secret"})  # fmt: skip
        assert ok.status_code == 200


def test_data_survives_a_restart_with_a_file_database(tmp_path):
    db = str(tmp_path / "sandbox.db")
    with run_sandbox(db) as sb:
        headers = {"Authorization": f"Bearer {sb.key}"}
        httpx.post(f"{sb.url}/users/track", headers=headers, json={
            "attributes": [{"external_id": "u1", "tier": "gold"}],
            "events": [{"external_id": "u1", "name": "e", "time": "2024-01-01"}]})  # fmt: skip
        secret = sb.sandbox.keys.create("stored", ["users.export.ids"])
    with run_sandbox(db, key="another-startup-key") as sb:
        user = sb.user("u1")
        assert user["custom_attributes"] == {"tier": "gold"}
        assert [e["name"] for e in user["events"]] == ["e"]
        assert sb.counters()["data_points"] == 2
        exported = httpx.post(f"{sb.url}/users/export/ids", json={"external_ids": ["u1"]},
                              headers={"Authorization": f"Bearer {secret}"})  # fmt: skip
        assert exported.json()["users"][0]["custom_attributes"] == {"tier": "gold"}
        # a --key given at the first start is memory only
        old = httpx.post(f"{sb.url}/users/export/ids", json={"external_ids": ["u1"]},
                         headers={"Authorization": "Bearer sandbox-test-key"})  # fmt: skip
        assert old.status_code == 401
