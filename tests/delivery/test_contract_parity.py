"""What the gateway accepts, the sandbox (Braze's stand-in) can apply: both validate with
the one contract (``headwater.braze.track``), and application parses times with the same
parser, so an accepted object never fails later, after its neighbours were applied (the
sandbox answered 500 and every retry applied the neighbours again)."""

from __future__ import annotations

import json
from datetime import timedelta, timezone

import httpx
import orjson
import pytest
from gateway_harness import make_settings, running_gateway, wait_until
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.braze.errors import BrazeError
from headwater.braze.track import parse_track_request
from headwater.sandbox.app import Sandbox
from headwater.sandbox.settings import SandboxSettings
from headwater.sandbox.testing import run_sandbox
from headwater.state.dead_letters import list_dead_letters

GOOD = "2024-05-02T10:00:00Z"
ZONES = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
EXTREME_TIMES = (
    st.datetimes(timezones=ZONES).map(lambda dt: dt.isoformat())
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(min_value=-(10**25), max_value=10**25)
    | st.integers(min_value=-(10**25), max_value=10**25).map(str)
    | st.sampled_from(["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "1e20"])
)


@pytest.fixture(scope="module")
def backend():
    sandbox = Sandbox.open(SandboxSettings(db=":memory:"))
    yield sandbox.users
    sandbox.store.close()


@settings(deadline=None, max_examples=200)
@given(EXTREME_TIMES)
def test_every_object_the_contract_accepts_the_sandbox_applies(backend, when):
    body = {
        "events": [{"external_id": "p", "name": "e", "time": when}],
        "purchases": [{"external_id": "p", "product_id": "sku", "currency": "USD", "price": 1,
                       "time": when}],
        "attributes": [
            {"external_id": "p", "when": when},
            {"external_id": "p", "date_of_first_session": when},
            {"external_id": "p", "nested": {"at": {"$time": when}}},
            {"external_id": "p", "list": {"$add": [{"id": 1, "at": {"$time": when}}]}},
        ],
    }  # fmt: skip
    body = orjson.loads(json.dumps(body))  # as it arrives: JSON decoding makes huge ints floats
    try:
        parsed = parse_track_request(body)
    except BrazeError:
        return  # nothing valid: nothing for the sandbox to apply
    accepted = parsed.valid_count
    backend.users_track(parsed, "parity")
    assert parsed.valid_count == accepted, parsed.errors  # nothing failed to apply


def test_an_event_the_sandbox_cannot_take_is_refused_at_the_gateway_and_its_neighbour_counted_once(
    tmp_path,
):
    with run_sandbox() as sandbox:
        settings_ = make_settings(
            f"sqlite:///{tmp_path / 'state.db'}", {"braze": sandbox.url}, key=sandbox.key
        )
        with running_gateway(settings_) as gw:
            answer = httpx.post(
                f"{gw.url}/users/track",
                json={"events": [
                    {"external_id": "bad", "name": "e", "time": "0001-01-01T00:00:00+14:00"},
                    {"external_id": "good", "name": "e", "time": GOOD},
                ]},
                headers={"Authorization": f"Bearer {gw.key()}"},
            )  # fmt: skip
            assert answer.status_code == 201, answer.text
            body = answer.json()
            assert body["events_processed"] == 1
            assert [(e["input_array"], e["index"]) for e in body["errors"]] == [("events", 0)]
            assert "'time'" in body["errors"][0]["type"]
            wait_until(lambda: gw.hub.outbox.depth() == 0, timeout=20)
            assert list_dead_letters(gw.hub.engine) == []
        assert sandbox.user("good")["custom_events"]["e"]["count"] == 1
        assert sandbox.user("bad") is None
