"""Schemathesis fuzzes the gateway with generated bodies (valid-shaped and not): it must
never answer 5xx, and every answer must be a Braze-style JSON error or success."""

from __future__ import annotations

import pytest
import schemathesis
from gateway_harness import fake_braze, make_settings, running_gateway
from hypothesis import HealthCheck, settings

_OBJECT = {"type": "object", "additionalProperties": True}
_TRACK_OBJECT = {
    "type": "object",
    "properties": {
        "external_id": {"type": "string"},
        "email": {"type": "string"},
        "name": {"type": "string"},
        "time": {"type": "string"},
        "product_id": {"type": "string"},
        "currency": {"type": "string"},
        "price": {"type": "number"},
        "properties": _OBJECT,
    },
    "additionalProperties": True,
}
SPEC = {
    "openapi": "3.0.3",
    "info": {"title": "Headwater gateway", "version": "1"},
    "paths": {
        "/users/track": {
            "post": {
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    kind: {"type": "array", "items": _TRACK_OBJECT, "maxItems": 80}
                                    for kind in ("attributes", "events", "purchases")
                                },
                            }
                        }
                    },
                },
                "responses": {"201": {"description": "accepted"}},
            }
        },
        "/hooks/{stream}": {
            "post": {
                "parameters": [
                    {
                        "name": "stream",
                        "in": "path",
                        "required": True,
                        "schema": {"enum": ["extole", "aiq", "unknown"]},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {}}},
                },
                "responses": {"202": {"description": "accepted"}},
            }
        },
        "/content/{stream}/{user_id}": {
            "get": {
                "parameters": [
                    {
                        "name": "stream",
                        "in": "path",
                        "required": True,
                        "schema": {"enum": ["extole", "aiq"]},
                    },
                    {
                        "name": "user_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                ],
                "responses": {"200": {"description": "content"}},
            }
        },
    },
}
STREAMS = {
    "extole": {
        "preset": "extole",
        "auth": {"type": "bearer", "token": "fuzz-token"},
        "content": {"attributes": ["share_link"], "token": "fuzz-token"},
    },
    "aiq": {"preset": "actioniq", "auth": {"type": "bearer", "token": "fuzz-token"}},
}
schema = schemathesis.openapi.from_dict(SPEC)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    state = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'state.db'}"
    with (
        fake_braze() as (_fake, url),
        running_gateway(make_settings(state, {"braze": url}, STREAMS)) as gw,
    ):
        yield gw, gw.key("fuzzer", "users.track")


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_gateway_never_answers_5xx_to_any_body(case, gateway):
    gw, key = gateway
    response = case.call(
        base_url=gw.url,
        headers={"Authorization": f"Bearer {key if case.path == '/users/track' else 'fuzz-token'}"},
    )
    assert response.status_code < 500, response.text
    body = response.json()
    assert isinstance(body, dict)
    if response.status_code >= 400:
        assert isinstance(body.get("message"), str)
