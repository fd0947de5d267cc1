"""The triggers: section is checked like every other, each problem at its line."""

from __future__ import annotations

import pytest

from headwater.config.loading import parse_project
from headwater.errors import ConfigError

HEAD = "destinations:\n  braze: {url: 'http://127.0.0.1:9', api_key: k}\ntriggers:\n  t:\n"


def problems(body: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_project(HEAD + body)
    return str(caught.value)


def test_a_valid_trigger_loads():
    project = parse_project(HEAD + "    when: {stream: gateway, event: purchase, where: {tier: gold}}\n"
                            "    canvas_id: c1\n")  # fmt: skip
    assert project.triggers["t"].action == "canvas"
    assert project.triggers["t"].send_to_existing_only is True


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("    on: {audience: vip}\n    campaign_id: c\n", "under 'when:'"),
        ("    when: {audience: vip, stream: x}\n    campaign_id: c\n", "exactly one of 'audience'"),
        ("    when: {audience: vip}\n", "exactly one of 'campaign_id'"),
        ("    when: {audience: vip}\n    campaign_id: c\n    canvas_id: d\n", "exactly one of"),
        ("    when: {audience: vip}\n    profile_only: true\n", "'profile_only' needs"),
        ("    when: {audience: vip}\n    campaign_id: c\n    properties: {a: '{{ x'}\n",
         "property 'a': template"),
        ("    when: {audience: vip}\n    campaign_id: c\n    properties: {"
         + ", ".join(f"p{i}: v" for i in range(21)) + "}\n", "at most 20 properties"),
        ("    when: {audience: vip}\n    campaign_id: c\n    destination: nope\n",
         "no destination named 'nope'"),
        ("    when: {stream: nope}\n    campaign_id: c\n", "no stream named 'nope'"),
        ("    when: {audience: vip, where: {a: 1}}\n    campaign_id: c\n", "stream triggers only"),
    ],
)  # fmt: skip
def test_mistakes_are_reported_at_their_line(body, expected):
    found = problems(body)
    assert expected in found
    assert "headwater.yml:" in found
