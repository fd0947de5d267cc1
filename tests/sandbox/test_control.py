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


def test_the_control_token_takes_any_case_of_bearer_and_refuses_a_bare_token():
    with run_sandbox(control_token="ctl-secret") as sb:
        for scheme in ("Bearer", "bearer", "BEARER"):
            answer = httpx.get(f"{sb.url}/_sandbox/counters",
                               headers={"Authorization": f"{scheme} ctl-secret"})  # fmt: skip
            assert answer.status_code == 200, scheme
        for header in ("ctl-secret", "Basic ctl-secret", "Bearer", "Bearer wrong"):
            answer = httpx.get(f"{sb.url}/_sandbox/counters", headers={"Authorization": header})
            assert answer.status_code == 401, header
            assert "ctl-secret" not in answer.text


def _address_off_loopback() -> str | None:
    """This machine's address on its network (no packet is sent), if it has one."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_without_a_token_the_control_api_answers_only_this_machine():
    import asyncio

    from headwater.sandbox.app import Sandbox, create_app
    from headwater.sandbox.settings import SandboxSettings
    from headwater.testing import serve_in_thread

    sandbox = Sandbox.open(SandboxSettings(key="k" * 20))
    app = create_app(sandbox=sandbox)

    async def from_peer(host: str, **headers: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(host, 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
            return await client.post("/_sandbox/reset", headers=headers)

    for host in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        assert asyncio.run(from_peer(host)).status_code == 200, host
    for host in ("192.0.2.7", "10.0.0.5", "2001:db8::1", "::ffff:10.0.0.5"):
        refused = asyncio.run(from_peer(host))
        assert refused.status_code == 403, host
        assert "--control-token" in refused.json()["message"]

    local = _address_off_loopback()
    if local is None:
        return  # no network address here: the transport checks above still ran
    with serve_in_thread(app, host="0.0.0.0") as server:
        port = server.port
        assert httpx.get(f"http://127.0.0.1:{port}/_sandbox/counters").status_code == 200
        assert httpx.get(f"http://{local}:{port}/_sandbox/counters").status_code == 403
        track = httpx.post(f"http://{local}:{port}/users/track",
                           headers={"Authorization": f"Bearer {'k' * 20}"},
                           json={"attributes": [{"external_id": "u1", "a": 1}]})  # fmt: skip
        assert track.status_code == 201  # the Braze API itself is guarded by keys, as before
