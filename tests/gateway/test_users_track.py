"""The gateway's /users/track answers as Braze would, and only after the commit."""

from __future__ import annotations

import httpx
import pytest
from gateway_harness import make_settings, running_gateway, wait_until

from headwater.braze.errors import MSG_MAX_INPUT, MSG_NO_VALID_DATA
from headwater.state.outbox import outbox

NOW = "2024-05-02T10:00:00Z"


def _event(user: str, name: str = "bought", **extra) -> dict:
    return {"external_id": user, "name": name, "time": NOW, **extra}


@pytest.fixture
def gateway(sqlite_state, receiver):
    fake, url = receiver
    with running_gateway(make_settings(sqlite_state, {"braze": url})) as gw:
        yield gw, fake


def test_track_accepts_valid_objects_with_braze_201_body_and_delivers_them(gateway):
    gw, fake = gateway
    key = gw.key("extole", "users.track")
    body = {
        "attributes": [{"external_id": "u1", "first_name": "Ada"}],
        "events": [_event("u1"), _event("u2")],
    }
    answer = httpx.post(
        f"{gw.url}/users/track", json=body, headers={"Authorization": f"Bearer {key}"}
    )
    assert answer.status_code == 201
    assert answer.json() == {"message": "success", "attributes_processed": 1, "events_processed": 2}
    wait_until(lambda: len(fake.objects["events"]) == 2 and len(fake.objects["attributes"]) == 1)
    assert fake.objects["attributes"][0]["first_name"] == "Ada"


def test_track_reports_bad_email_and_delivers_the_rest(gateway):
    gw, fake = gateway
    key = gw.key()
    body = {
        "attributes": [
            {"external_id": "u1", "email": "not-an-email"},
            {"external_id": "u2", "email": "ok@example.com"},
        ]
    }
    answer = httpx.post(
        f"{gw.url}/users/track", json=body, headers={"Authorization": f"Bearer {key}"}
    )
    assert answer.status_code == 201
    payload = answer.json()
    assert payload["attributes_processed"] == 1
    assert payload["errors"] == [
        {
            "type": "The value provided for the 'email' field is not a valid email.",
            "input_array": "attributes",
            "index": 0,
        }
    ]
    wait_until(lambda: len(fake.objects["attributes"]) == 1)
    assert fake.objects["attributes"][0]["external_id"] == "u2"


def test_track_answers_fatal_errors_like_braze_and_enqueues_nothing(gateway):
    gw, fake = gateway
    key = gw.key()
    auth = {"Authorization": f"Bearer {key}"}
    every_bad = httpx.post(
        f"{gw.url}/users/track", json={"events": [{"external_id": "u1"}]}, headers=auth
    )
    assert every_bad.status_code == 400
    assert every_bad.json()["message"] == MSG_NO_VALID_DATA
    assert every_bad.json()["errors"][0]["input_array"] == "events"
    too_many = httpx.post(
        f"{gw.url}/users/track", json={"events": [_event(f"u{i}") for i in range(76)]}, headers=auth
    )
    assert (too_many.status_code, too_many.json()) == (400, {"message": MSG_MAX_INPUT})
    malformed = httpx.post(f"{gw.url}/users/track", content=b"{not json", headers=auth)
    assert malformed.status_code == 400
    oversize = httpx.post(
        f"{gw.url}/users/track", content=b" " * (4 * 1024 * 1024 + 1), headers=auth
    )
    assert oversize.status_code == 413
    with gw.hub.engine.connect() as conn:
        assert conn.execute(outbox.select()).all() == []
    assert fake.requests == []


def test_unknown_key_is_401_and_missing_permission_is_403(gateway):
    gw, _ = gateway
    exporter = gw.key("reader", "users.export.ids")
    body = {"events": [_event("u1")]}
    missing = httpx.post(f"{gw.url}/users/track", json=body)
    assert missing.status_code == 401
    wrong = httpx.post(
        f"{gw.url}/users/track", json=body, headers={"Authorization": "Bearer hwk_wrongwrongwrong"}
    )
    assert wrong.status_code == 401
    assert "wrongwrongwrong" not in wrong.text
    denied = httpx.post(
        f"{gw.url}/users/track", json=body, headers={"Authorization": f"Bearer {exporter}"}
    )
    assert (denied.status_code, denied.json()) == (403, {"message": "Access Denied"})


def test_revoked_key_stops_working_within_a_second(gateway):
    from headwater.state.keys import revoke_key

    gw, _ = gateway
    key = gw.key("extole")
    auth = {"Authorization": f"Bearer {key}"}
    body = {"events": [_event("u1")]}
    assert httpx.post(f"{gw.url}/users/track", json=body, headers=auth).status_code == 201
    revoke_key(gw.hub.engine, "extole")
    wait_until(
        lambda: httpx.post(f"{gw.url}/users/track", json=body, headers=auth).status_code == 401,
        timeout=3,
    )


def test_a_flood_of_unknown_keys_reads_the_key_table_a_few_times_a_second_at_most(gateway):
    import secrets
    import time

    from sqlalchemy import event

    gw, _ = gateway
    key = gw.key("extole")
    reads: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "gateway_keys" in statement:
            reads.append(statement)

    event.listen(gw.hub.engine, "before_cursor_execute", count)
    started = time.monotonic()
    with httpx.Client(base_url=gw.url) as client:
        for _ in range(200):
            bogus = {"Authorization": f"Bearer hwk_{secrets.token_urlsafe(32)}"}
            assert client.post("/users/track", json={}, headers=bogus).status_code == 401
        ok = client.post("/users/track", json={"events": [_event("u1")]},
                         headers={"Authorization": f"Bearer {key}"})  # fmt: skip
    elapsed = time.monotonic() - started
    event.remove(gw.hub.engine, "before_cursor_execute", count)
    assert ok.status_code == 201
    # Once a second for revocations, four times a second for misses, whatever the flood.
    assert len(reads) <= 2 + elapsed * (1 + 4)


def test_export_ids_is_passed_through_to_the_destination(gateway):
    gw, fake = gateway
    fake.users_by_email["ada@example.com"] = {"external_id": "u1", "email": "ada@example.com"}
    key = gw.key("reader", "users.export.ids")
    answer = httpx.post(
        f"{gw.url}/users/export/ids",
        json={"email_address": "ada@example.com"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert answer.status_code == 201
    assert answer.json()["users"] == [{"external_id": "u1", "email": "ada@example.com"}]
    assert fake.export_calls == 1
    # Through the destination's client: one budget with delivery, the read counted in it.
    budget = gw.hub.braze_client("braze").budget
    assert budget is gw.hub.workers[0].client.budget
    assert budget.used("users.export.ids") == 1


def test_export_ids_answers_503_when_the_destination_cannot_be_reached(sqlite_state):
    settings = make_settings(sqlite_state, {"braze": "http://127.0.0.1:9"}, run_workers=False)
    with running_gateway(settings) as gw:
        key = gw.key("reader", "users.export.ids")
        answer = httpx.post(f"{gw.url}/users/export/ids", json={"external_ids": ["u1"]},
                            headers={"Authorization": f"Bearer {key}"})  # fmt: skip
    assert answer.status_code == 503
    assert answer.json() == {"message": "The destination could not be reached"}


def test_a_test_key_sends_to_the_test_destination_only(sqlite_state):
    from gateway_harness import fake_braze

    with fake_braze() as (prod, prod_url), fake_braze() as (test, test_url):
        settings = make_settings(sqlite_state, {"braze": prod_url, "braze_test": test_url})
        with running_gateway(settings) as gw:
            key = gw.key("extole-qa", "users.track", destination="braze_test")
            answer = httpx.post(
                f"{gw.url}/users/track",
                json={"events": [_event("u1", "qa_event")]},
                headers={"Authorization": f"Bearer {key}"},
            )
            assert answer.status_code == 201
            wait_until(lambda: test.events("qa_event"))
            wait_until(lambda: gw.hub.outbox.depth() == 0)
    assert prod.requests == []


def test_extole_braze_integration_posts_work_unchanged(gateway):
    import json
    from pathlib import Path

    gw, fake = gateway
    key = gw.key("extole")
    body = json.loads(
        (Path(__file__).parents[1] / "cases" / "extole" / "braze_track.json").read_text()
    )
    answer = httpx.post(
        f"{gw.url}/users/track", json=body, headers={"Authorization": f"Bearer {key}"}
    )
    assert answer.json() == {"message": "success", "attributes_processed": 1, "events_processed": 1}
    wait_until(lambda: fake.events("extole_reward_earned"))
    assert fake.objects["attributes"][0]["extole_share_link"] == "https://refer.shop.example/ada"


def test_a_retried_post_delivers_its_events_once(gateway):
    gw, fake = gateway
    key = gw.key()
    body = {"events": [_event("u1", "retried", properties={"order": "A-1"})]}
    for _ in range(3):
        answer = httpx.post(
            f"{gw.url}/users/track", json=body, headers={"Authorization": f"Bearer {key}"}
        )
        assert answer.json() == {"message": "success", "events_processed": 1}
    other = {"events": [_event("u1", "retried", properties={"order": "A-2"})]}
    httpx.post(f"{gw.url}/users/track", json=other, headers={"Authorization": f"Bearer {key}"})
    wait_until(lambda: len(fake.events("retried")) == 2)
    wait_until(lambda: gw.hub.outbox.depth() == 0)
    assert sorted(e["properties"]["order"] for e in fake.events("retried")) == ["A-1", "A-2"]
