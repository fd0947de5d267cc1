"""``serve`` refuses to start while a stored key sends to a destination the project file
does not have: that partner's posts would be answered 201 and never delivered."""

from __future__ import annotations

import pytest
from gateway_harness import make_settings, running_gateway, sqlite_url

from headwater.errors import ConfigError
from headwater.runtime.hub import Hub
from headwater.state.db import open_state
from headwater.state.keys import create_key, revoke_key


def test_serve_refuses_a_stored_key_for_a_missing_destination(tmp_path):
    url = sqlite_url(tmp_path)
    engine = open_state(url)
    create_key(engine, "partner", ["users.track"])
    create_key(engine, "qa", ["users.track"], destination="staging")
    engine.dispose()
    settings = make_settings(url, {"braze": "http://127.0.0.1:9"}, run_workers=False)
    with pytest.raises(ConfigError) as caught:
        Hub(settings)
    message = str(caught.value)
    assert "'qa'" in message and "'staging'" in message and "keys revoke" in message
    assert "'partner'" not in message

    engine = open_state(url)
    revoke_key(engine, "qa")
    engine.dispose()
    with running_gateway(settings) as gateway:  # a revoked key stands in nobody's way
        assert gateway.hub.keys is not None
