"""Attribute de-duplication never leaves an older value: whatever sequence of sets is
posted, and however the requests fall into delivery rounds, the real sandbox (behind a
real gateway, on real sockets) ends with the last value posted for each user, and so does
the gateway's own record of what it delivered."""

from __future__ import annotations

import itertools
import time

import httpx
import pytest
from gateway_harness import fake_braze, make_settings, running_gateway, wait_until
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from headwater.sandbox.testing import run_sandbox
from headwater.state.delivered import delivered_attributes

TIERS = ["gold", "silver", "bronze", None]  # None: Braze removes the attribute


@pytest.fixture
def gateway(tmp_path):
    with run_sandbox() as sandbox:
        settings_ = make_settings(
            f"sqlite:///{tmp_path / 'state.db'}", {"braze": sandbox.url}, key=sandbox.key
        )
        with running_gateway(settings_) as gw:
            yield gw, sandbox, gw.key()


def _post(gw, key, objects) -> None:
    answer = httpx.post(
        f"{gw.url}/users/track",
        json={"attributes": objects},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text


def _drained(gw) -> None:
    wait_until(lambda: gw.hub.outbox.depth() == 0, timeout=30)


def _in_braze(sandbox, external_id: str, name: str = "tier") -> object:
    user = sandbox.user(external_id)
    return None if user is None else (user.get("custom_attributes") or {}).get(name)


def _recorded(gw, external_id: str, name: str = "tier") -> bytes | None:
    with gw.hub.engine.connect() as conn:
        return conn.execute(
            select(delivered_attributes.c.value).where(
                delivered_attributes.c.user_key == f"external_id:{external_id}",
                delivered_attributes.c.name == name,
            )
        ).scalar_one_or_none()


@pytest.mark.parametrize("one_request", [False, True])
def test_a_value_set_back_after_a_change_in_one_round_is_not_dropped(gateway, one_request):
    """The reported case: gold delivered, then silver and gold back to back. The final
    gold was compared with the gold known before the round and dropped: Braze kept silver."""
    gw, sandbox, key = gateway
    _post(gw, key, [{"external_id": "dd1", "tier": "gold"}])
    _drained(gw)
    then = [{"external_id": "dd1", "tier": "silver"}, {"external_id": "dd1", "tier": "gold"}]
    if one_request:
        _post(gw, key, then)
    else:
        for obj in then:
            _post(gw, key, [obj])
    _drained(gw)
    assert _in_braze(sandbox, "dd1") == "gold"
    assert _recorded(gw, "dd1") == b'"gold"'


def test_an_operator_makes_dedupe_forget_the_value_it_changed(gateway):
    """After ``inc`` or ``add`` only Braze knows the value: setting the value known before
    the operator again must reach Braze."""
    gw, sandbox, key = gateway
    _post(gw, key, [{"external_id": "op1", "visits": 5, "tags": ["a"]}])
    _drained(gw)
    _post(gw, key, [{"external_id": "op1", "visits": {"inc": 1}, "tags": {"add": ["b"]}}])
    _drained(gw)
    assert _in_braze(sandbox, "op1", "visits") == 6
    _post(gw, key, [{"external_id": "op1", "visits": 5, "tags": ["a"]}])
    _drained(gw)
    assert _in_braze(sandbox, "op1", "visits") == 5
    assert _in_braze(sandbox, "op1", "tags") == ["a"]


SETS = st.lists(
    st.tuples(st.integers(0, 2), st.sampled_from(TIERS)), min_size=1, max_size=6
)  # one request: (user, tier) per object
PLAN = st.lists(st.one_of(SETS, st.just("drain")), min_size=1, max_size=8)


def test_braze_always_ends_with_the_last_value_posted(gateway):
    gw, sandbox, key = gateway
    runs = itertools.count()

    @settings(
        deadline=None,
        max_examples=30,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(PLAN)
    def check(plan):
        run = next(runs)  # fresh users per example: examples do not see each other's state
        last: dict[str, object] = {}
        for step in plan:
            if step == "drain":
                _drained(gw)
                continue
            objects = [{"external_id": f"r{run}-u{user}", "tier": tier} for user, tier in step]
            _post(gw, key, objects)
            for obj in objects:
                last[obj["external_id"]] = obj["tier"]
        _drained(gw)
        for external_id, tier in last.items():
            assert _in_braze(sandbox, external_id) == tier, (external_id, plan)
            recorded = _recorded(gw, external_id)
            assert recorded == (b"null" if tier is None else f'"{tier}"'.encode()), plan

    check()


def test_an_older_value_retried_after_a_newer_one_was_delivered_is_not_sent(sqlite_state):
    """silver meets an outage and waits out its backoff; gold, posted later, goes out
    first. The retried silver must not overwrite gold."""
    with fake_braze() as (fake, url):
        # The outbox's backoff is long and its clock is stepped: silver is retried only
        # once gold went out, however slowly this machine posts gold.
        settings_ = make_settings(
            sqlite_state, {"braze": url}, max_attempts=10,
            retry_base_seconds=600, retry_max_seconds=600,
        )  # fmt: skip
        with running_gateway(settings_) as gw:
            key = gw.key()
            fake.faults.extend([503, 503, 503])  # silver's request, and both client retries
            _post(gw, key, [{"external_id": "late", "tier": "silver"}])
            wait_until(lambda: fake.status_counts.get(503, 0) >= 3)  # silver's round is over
            _post(gw, key, [{"external_id": "late", "tier": "gold"}])
            wait_until(lambda: gw.hub.outbox.depth() == 1)  # gold delivered and settled
            gw.hub.outbox.clock = lambda: time.time() + 3600  # silver's backoff has passed
            _drained(gw)
            sent = [o["tier"] for o in fake.objects["attributes"] if "tier" in o]
            assert sent == ["gold"]
            assert _recorded(gw, "late") == b'"gold"'
            assert gw.hub.counters.read()["gateway:partner"]["objects_skipped_unchanged"] == 1


def test_a_value_set_again_while_an_older_one_waits_for_a_retry_is_sent(sqlite_state):
    """bronze delivered; silver meets an outage and waits out its backoff (Braze may even
    have applied it: an answer lost is a failure too); bronze posted again must be sent,
    not dropped as "unchanged", and the retried silver must then not overwrite it."""
    with fake_braze() as (fake, url):
        settings_ = make_settings(
            sqlite_state, {"braze": url}, max_attempts=10,
            retry_base_seconds=600, retry_max_seconds=600,
        )  # fmt: skip
        with running_gateway(settings_) as gw:
            key = gw.key()
            _post(gw, key, [{"external_id": "back", "tier": "bronze"}])
            _drained(gw)
            fake.faults.extend([503, 503, 503])  # silver's request, and both client retries
            _post(gw, key, [{"external_id": "back", "tier": "silver"}])
            wait_until(lambda: fake.status_counts.get(503, 0) >= 3)  # silver's round is over
            _post(gw, key, [{"external_id": "back", "tier": "bronze"}])
            wait_until(lambda: gw.hub.outbox.depth() == 1)  # bronze settled, silver waits
            gw.hub.outbox.clock = lambda: time.time() + 3600  # silver's backoff has passed
            _drained(gw)
            sent = [o["tier"] for o in fake.objects["attributes"] if "tier" in o]
            assert sent == ["bronze", "bronze"]
            assert _recorded(gw, "back") == b'"bronze"'
