"""Audience-entry triggers: rendered properties, batches of 50, each entry sent once."""

from __future__ import annotations

import pytest

from headwater.state import triggers as ledger
from headwater.state.db import open_state
from headwater.triggers import fire_on_audience_entry
from tests.triggers.conftest import (
    CAMPAIGN,
    entries,
    make_project,
    recorded_sends,
)


@pytest.fixture(params=["sqlite", "postgres"])
def state_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return request.getfixturevalue("pg_url")


def test_entries_are_sent_in_fifties_with_their_rendered_properties(sandbox, state_url, tmp_path):
    sandbox.seed(attributes=[{"external_id": f"u{i}"} for i in range(120)])
    project = make_project(sandbox, state_url, tmp_path)
    report = fire_on_audience_entry(project, "vip", "a", entries(120))
    by_trigger = {o.trigger: o for o in report.outcomes}
    assert set(by_trigger) == {"welcome_vip", "onboard"}  # split a: both; churn's not
    assert by_trigger["welcome_vip"].sent == 120 and by_trigger["welcome_vip"].requests == 3
    campaign = [s for s in recorded_sends(sandbox) if s.get("campaign_id") == CAMPAIGN]
    assert [len(s["recipients"]) for s in campaign] == [50, 50, 20]
    first = campaign[0]["recipients"][0]
    assert first["external_user_id"] == "u0"
    assert first["properties"] == {"company": "Co 0", "points": 0}  # a number stays a number
    canvas = [s for s in recorded_sends(sandbox) if s.get("kind") == "canvas"]
    assert canvas[0]["recipients"][0]["properties"] == {"tier": "gold"}
    state = open_state(project.state_url)
    assert ledger.counts(state)["welcome_vip"][ledger.SENT] == 120


def test_the_same_entry_twice_sends_once_and_a_later_entry_sends_again(
    sandbox, state_url, tmp_path
):
    project = make_project(sandbox, state_url, tmp_path)
    fire_on_audience_entry(project, "vip", None, entries(3))  # split None: onboard only
    again = fire_on_audience_entry(project, "vip", None, entries(3))
    assert again.sent == 0 and again.outcomes[0].already == 3
    later = fire_on_audience_entry(project, "vip", None, entries(3, entered_at="2026-12-05"))
    assert later.sent == 3
    assert len(recorded_sends(sandbox)) == 2


def test_a_bad_template_or_oversized_properties_name_the_person_and_the_rest_go(
    sandbox, state_url, tmp_path
):
    project = make_project(sandbox, state_url, tmp_path)
    people = entries(4)
    people[1]["record"]["company_name"] = "x" * 60_000
    people[2]["identifier"] = {"phone": "+1"}
    report = fire_on_audience_entry(project, "vip", "a", people)
    outcome = next(o for o in report.outcomes if o.trigger == "welcome_vip")
    assert (outcome.sent, outcome.failed) == (2, 2)
    messages = sorted(str(e) for e in outcome.errors)
    assert "person 'p1': properties are 60,0" in messages[0] and "50 KB" in messages[0]
    assert "'company'" in messages[0]
    assert "person 'p2': no external_id or user_alias" in messages[1]
    assert outcome.status == "partial"
    # Fixed and presented again: a failed entry (nothing was sent) is sent then.
    people[1]["record"]["company_name"] = "Fine"
    again = fire_on_audience_entry(project, "vip", "a", people)
    assert next(o for o in again.outcomes if o.trigger == "welcome_vip").sent == 1


def test_a_liquid_error_at_render_time_names_the_field(sandbox, state_url, tmp_path):
    from tests.triggers.conftest import PROJECT

    text = PROJECT.replace("{{{{ customer.points }}}}", "{{{{ customer.points | divided_by: 0 }}}}")
    project = make_project(sandbox, state_url, tmp_path, text)
    report = fire_on_audience_entry(project, "vip", "a", entries(1))
    outcome = next(o for o in report.outcomes if o.trigger == "welcome_vip")
    assert outcome.failed == 1
    assert "person 'p0': property 'points'" in str(outcome.errors[0])
    assert outcome.errors[0].field == "points"


def test_profile_only_writes_attributes_and_sends_nothing(sandbox, state_url, tmp_path):
    sandbox.seed(attributes=[{"external_id": "u0"}])
    project = make_project(sandbox, state_url, tmp_path)
    people = entries(1)
    people[0]["record"]["risk"] = "high"
    report = fire_on_audience_entry(project, "churn", None, people)
    assert report.sent == 1
    assert sandbox.user("u0")["custom_attributes"]["churn_risk"] == "high"
    assert recorded_sends(sandbox) == []


def test_an_unknown_campaign_fails_the_entries_without_sending(sandbox, state_url, tmp_path):
    from tests.triggers.conftest import PROJECT

    project = make_project(sandbox, state_url, tmp_path, PROJECT.replace("{campaign}", "gone"))
    report = fire_on_audience_entry(project, "vip", "a", entries(2))
    outcome = next(o for o in report.outcomes if o.trigger == "welcome_vip")
    assert outcome.failed == 2 and "Invalid Campaign ID" in str(outcome.errors[0])


def test_hostile_records_fail_their_person_only(sandbox, state_url, tmp_path):
    deep: dict = {}
    inner = deep
    for _ in range(300):
        inner["a"] = {}
        inner = inner["a"]
    project = make_project(sandbox, state_url, tmp_path)
    people = entries(4)
    people[0]["record"]["points"] = deep
    people[1]["identifier"] = {"external_id": {"$ne": None}}
    people[2]["record"] = None
    report = fire_on_audience_entry(project, "vip", "a", people)
    outcome = next(o for o in report.outcomes if o.trigger == "welcome_vip")
    assert outcome.error is None
    assert outcome.sent + outcome.failed == 4 and outcome.sent >= 2
