"""Event triggers: the filter, and each delivered event fired once (keyed by its place in
the outbox, so a redelivered event does not fire again)."""

from __future__ import annotations

from headwater.config.loading import parse_project
from headwater.triggers import fire_on_events
from headwater.triggers.events import matches
from tests.triggers.conftest import CAMPAIGN, recorded_sends

TEXT = """
state: sqlite:///{state}
destinations:
  braze: {{url: "{url}", api_key: "{key}"}}
triggers:
  thanks:
    when: {{stream: gateway, event: referral_completed, where: {{tier: gold, reward.kind: cash}}}}
    campaign_id: {campaign}
    properties: {{amount: "{{{{ customer.reward.amount }}}}", what: "{{{{ customer.event_name }}}}"}}
"""


def event(name="referral_completed", tier="gold", kind="cash", who="u1") -> dict:
    return {"external_id": who, "name": name, "time": "2026-12-01T00:00:00Z",
            "properties": {"tier": tier, "reward": {"kind": kind, "amount": 5}}}  # fmt: skip


def project_for(sandbox, tmp_path):
    text = TEXT.format(state=tmp_path / "s.db", url=sandbox.url, key=sandbox.key,
                       campaign=CAMPAIGN)  # fmt: skip
    return parse_project(text, root=tmp_path)


def test_the_filter_needs_stream_name_and_every_where_value(sandbox, tmp_path):
    trigger = project_for(sandbox, tmp_path).triggers["thanks"]
    assert matches(trigger, "gateway", event())
    assert not matches(trigger, "extole", event())
    assert not matches(trigger, "gateway", event(name="other"))
    assert not matches(trigger, "gateway", event(tier="silver"))
    assert not matches(trigger, "gateway", event(kind="points"))
    assert not matches(trigger, "gateway", {"name": "referral_completed", "properties": "x"})


def test_each_delivered_event_fires_once(sandbox, tmp_path):
    project = project_for(sandbox, tmp_path)
    events = [(41, 0, event()), (41, 1, event(tier="silver")), (42, 0, event(who="u2"))]
    report = fire_on_events(project, "gateway", events)
    assert report.sent == 2
    again = fire_on_events(project, "gateway", events)  # redelivered: at-least-once upstream
    assert again.sent == 0
    (send,) = recorded_sends(sandbox)
    assert [r["external_user_id"] for r in send["recipients"]] == ["u1", "u2"]
    assert send["recipients"][0]["properties"] == {"amount": 5, "what": "referral_completed"}
