"""Request-body schemas of the messaging endpoints for the OpenAPI document (they
describe; the contract in ``headwater.braze.messaging`` validates)."""

from __future__ import annotations

ALIAS = {
    "type": "object",
    "properties": {"alias_name": {"type": "string"}, "alias_label": {"type": "string"}},
}
RECIPIENT = {
    "type": "object",
    "properties": {
        "external_user_id": {"type": "string"},
        "user_alias": ALIAS,
        "email": {"type": "string"},
        "braze_id": {"type": "string"},
        "trigger_properties": {"type": "object"},
        "canvas_entry_properties": {"type": "object"},
        "context": {"type": "object"},
        "send_to_existing_only": {"type": "boolean"},
        "attributes": {"type": "object"},
    },
}
STRINGS = {"type": "array", "items": {"type": "string"}}


def _send(id_field: str, properties: tuple[str, ...]) -> dict:
    return {
        "type": "object",
        "required": [id_field],
        "properties": {
            id_field: {"type": "string"},
            "send_id": {"type": "string"},
            "broadcast": {"type": "boolean"},
            "recipients": {"type": "array", "items": RECIPIENT, "maxItems": 50},
            **{p: {"type": "object"} for p in properties},
        },
    }


BODIES: dict[str, dict] = {
    "campaigns.trigger.send": _send("campaign_id", ("trigger_properties",)),
    "canvas.trigger.send": _send("canvas_id", ("canvas_entry_properties", "context")),
    "subscription.status.set": {
        "type": "object",
        "properties": {
            "subscription_group_id": {"type": "string"},
            "subscription_state": {"type": "string", "enum": ["subscribed", "unsubscribed"]},
            "external_id": STRINGS,
            "email": STRINGS,
            "phone": STRINGS,
        },
    },
    "users.alias.update": {
        "type": "object",
        "properties": {
            "alias_updates": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "alias_label": {"type": "string"},
                        "old_alias_name": {"type": "string"},
                        "new_alias_name": {"type": "string"},
                    },
                },
            }
        },
    },
    "users.external_ids.rename": {
        "type": "object",
        "properties": {
            "external_id_renames": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "current_external_id": {"type": "string"},
                        "new_external_id": {"type": "string"},
                    },
                },
            }
        },
    },
}


def body_of(name: str) -> dict:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": BODIES[name]}},
        }
    }
