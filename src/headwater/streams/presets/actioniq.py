"""ActionIQ event pushes: an event name, the user's ``braze_id`` or ``external_id``, a
timestamp, event properties, and any other fields as user attributes.

Accepted bodies: one event object, a JSON array of them, or ``{"events": [...]}``::

    {"event_name": "aiq_audience_entered", "external_id": "u-1",
     "timestamp": "2024-05-02T10:00:00Z" | 1714644000 | 1714644000000,
     "properties": {"audience": "vip"}, "attributes": {"aiq_vip": true},
     "event_id": "optional partner id", "loyalty_tier": "gold"}

Top-level fields other than the ones named above become attributes too.
"""

from __future__ import annotations

from typing import Any

from headwater.config.streams import StreamConfig
from headwater.errors import RowError
from headwater.streams.mapping import Mapped, bounded
from headwater.streams.presets.common import braze_time
from headwater.streams.text import text_of

KNOWN = {
    "event_name", "event", "name", "external_id", "braze_id", "email", "timestamp", "time",
    "properties", "attributes", "event_id", "id", "user_alias",
}  # fmt: skip


IDENTIFIERS = ("external_id", "braze_id", "email")


def _one(item: Any, index: int, mapped: Mapped) -> None:
    where = f"events[{index}]"
    if not isinstance(item, dict):
        raise RowError("each ActionIQ event must be a JSON object", row=where)
    identity: dict[str, Any] = {
        key: text_of(item[key], key, row=where)
        for key in IDENTIFIERS
        if item.get(key) not in (None, "")
    }
    if item.get("user_alias"):
        identity["user_alias"] = item["user_alias"]  # its shape is Braze's check, below
    if not identity:
        raise RowError("needs external_id or braze_id", row=where, field="external_id")
    name = next((item[k] for k in ("event_name", "event", "name") if item.get(k)), None)
    properties = item.get("properties") or {}
    if not isinstance(properties, dict):
        raise RowError("properties must be an object", row=where, field="properties")
    given = item.get("attributes") or {}
    if not isinstance(given, dict):
        raise RowError("attributes must be an object", row=where, field="attributes")
    attributes = dict(given)
    for key, value in item.items():
        if key not in KNOWN:
            attributes[key] = value
    partner_id = next((item[k] for k in ("event_id", "id") if item.get(k) is not None), None)
    if attributes:
        mapped.add("attributes", {**identity, **attributes})
    if name:
        event = {
            **identity,
            "name": text_of(name, "event_name", row=where),
            "time": braze_time(item.get("timestamp", item.get("time")), "timestamp", row=where),
        }
        if properties:
            event["properties"] = properties
        mapped.add(
            "events",
            event,
            None if partner_id is None else text_of(partner_id, "event_id", row=where),
        )
    elif not attributes:
        raise RowError("needs event_name or attributes", row=where, field="event_name")


def map_payload(payload: Any, stream: str, config: StreamConfig) -> Mapped:
    if isinstance(payload, dict) and isinstance(payload.get("events"), list):
        items = payload["events"]
    elif isinstance(payload, list):
        items = payload
    else:
        items = [payload]
    mapped = Mapped()
    for index, item in enumerate(bounded(items, config.max_items, "the events array")):
        _one(item, index, mapped)
    return mapped
