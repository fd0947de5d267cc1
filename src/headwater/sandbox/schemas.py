"""Request-body schemas for the OpenAPI document, so clients and fuzzers (schemathesis)
know each endpoint's shape. The sandbox still validates bodies itself, Braze-style: the
schema describes, it does not gate."""

from __future__ import annotations

IDENTIFIERS = {
    "external_id": {"type": "string"},
    "braze_id": {"type": "string"},
    "email": {"type": "string"},
    "phone": {"type": "string"},
    "user_alias": {
        "type": "object",
        "properties": {"alias_name": {"type": "string"}, "alias_label": {"type": "string"}},
    },
    "_update_existing_only": {"type": "boolean"},
}
ATTRIBUTES = {"type": "object", "properties": IDENTIFIERS, "additionalProperties": True}
EVENT = {
    "type": "object",
    "properties": {**IDENTIFIERS, "name": {"type": "string"}, "time": {"type": "string"},
                   "properties": {"type": "object"}},
}  # fmt: skip
PURCHASE = {
    "type": "object",
    "properties": {**IDENTIFIERS, "product_id": {"type": "string"}, "currency": {"type": "string"},
                   "price": {"type": "number"}, "quantity": {"type": "integer"},
                   "time": {"type": "string"}, "properties": {"type": "object"}},
}  # fmt: skip
ALIAS = IDENTIFIERS["user_alias"]
STRINGS = {"type": "array", "items": {"type": "string"}}

BODIES: dict[str, dict] = {
    "users.track": {
        "type": "object",
        "properties": {
            "attributes": {"type": "array", "items": ATTRIBUTES},
            "events": {"type": "array", "items": EVENT},
            "purchases": {"type": "array", "items": PURCHASE},
        },
    },
    "users.export.ids": {
        "type": "object",
        "properties": {
            "external_ids": STRINGS,
            "user_aliases": {"type": "array", "items": ALIAS},
            "braze_id": {"type": "string"},
            "email_address": {"type": "string"},
            "phone": {"type": "string"},
            "fields_to_export": STRINGS,
        },
    },
    "users.export.segment": {
        "type": "object",
        "required": ["segment_id", "fields_to_export"],
        "properties": {
            "segment_id": {"type": "string"},
            "fields_to_export": STRINGS,
            "callback_endpoint": {"type": "string"},
            "output_format": {"type": "string", "enum": ["zip", "gzip"]},
        },
    },
    "users.alias.new": {
        "type": "object",
        "properties": {
            "user_aliases": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {**ALIAS["properties"], "external_id": {"type": "string"}},
                },
            }
        },
    },
    "users.identify": {
        "type": "object",
        "properties": {
            "aliases_to_identify": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"external_id": {"type": "string"}, "user_alias": ALIAS},
                },
            },
            "emails_to_identify": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "external_id": {"type": "string"},
                        "email": {"type": "string"},
                        "prioritization": STRINGS,
                    },
                },
            },
        },
    },
    "users.delete": {
        "type": "object",
        "properties": {
            "external_ids": STRINGS,
            "braze_ids": STRINGS,
            "user_aliases": {"type": "array", "items": ALIAS},
        },
    },
    "users.merge": {
        "type": "object",
        "properties": {
            "merge_updates": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "identifier_to_merge": {"type": "object"},
                        "identifier_to_keep": {"type": "object"},
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
