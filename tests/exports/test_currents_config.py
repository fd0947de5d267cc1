"""``currents:`` and ``landing:`` in headwater.yml: receivers need a token from the
environment (never shown), names that fit a URL and a directory, and forwards an http(s)
URL; every problem is reported at its line."""

from __future__ import annotations

import pytest

from headwater.config import load_project
from headwater.errors import ConfigError
from headwater.runtime.settings import ServeSettings


def _load(tmp_path, text: str):
    (tmp_path / "headwater.yml").write_text(text)
    return load_project(tmp_path)


def test_a_receiver_with_a_forward(tmp_path, monkeypatch):
    monkeypatch.setenv("CURRENTS_TOKEN", "secret-currents-token")
    project = _load(tmp_path, (
        "currents:\n  braze:\n    token: ${CURRENTS_TOKEN}\n"
        "    forward: {url: 'https://example.com/in', batch_size: 50}\nlanding: data/landing\n"
    ))  # fmt: skip
    receiver = project.currents["braze"]
    assert receiver.token.get_secret_value() == "secret-currents-token"
    assert "secret-currents-token" not in repr(project)
    assert receiver.forward.batch_size == 50
    settings = ServeSettings.from_project(project)
    assert settings.landing_dir == tmp_path / "data" / "landing"
    assert settings.forward_destinations == ["currents:braze"]


@pytest.mark.parametrize(
    "section, expected",
    [
        ("currents:\n  braze: {}\n", "token"),
        ("currents:\n  ../etc: {token: x}\n", "headwater.yml:2"),
        ("currents:\n  braze: {token: x, forward: {url: 'ftp://x'}}\n", "url"),
        ("currents:\n  braze: {token: x, forward: {url: 'http://x', batch_size: 101}}\n", "100"),
        ("currents:\n  braze: {token: x, max_body_bytes: 10}\n", "max_body_bytes"),
        ("currents:\n  braze: {token: x, colour: blue}\n", "colour"),
    ],
)
def test_problems_are_named(tmp_path, section, expected):
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, section)
    assert expected in str(caught.value)
