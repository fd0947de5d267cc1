"""What a Currents batch must look like, and the columns each event type lands with.

Braze's custom HTTP connector posts ``{"events": [...]}``, each event
``{event_type, id, time, user: {...}, properties: {...}}``. An event is *well formed* when
it is an object with a string ``event_type`` and ``id``, a numeric ``time`` if any, and
objects for ``user`` and ``properties`` if any; nothing else is required, because Braze
adds fields and event types without notice and a receiver that refused them would lose
data.

Each event type lands as its own table. The columns are the documented ones (Braze's event
glossary, custom HTTP connector tab): the envelope (id, time, user fields) for every type,
plus the documented properties of that type. A property the type does not document, or a
documented one whose value has another shape than documented, goes into the ``extra``
JSON column, so nothing is dropped and every file of a type has the same schema. An event
type this list does not know lands the same way with all its properties in ``extra``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import orjson

from headwater.state.currents import MAX_EVENT_ID

MAX_EVENTS_PER_BATCH = 100
EVENT_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]{0,199}")
MAX_TIME = 253402300799  # 9999-12-31T23:59:59Z: later is not a timestamp

USER_FIELDS = ("user_id", "external_user_id", "device_id", "timezone")

# The properties of each family, as the glossary documents them. Types: str (kept as
# text), float, bool, json (objects/lists, kept as JSON text).
APP = {"app_id": str, "platform": str, "os_version": str, "device_model": str}
AD = {"ad_id": str, "ad_id_type": str, "ad_tracking_enabled": bool}
CAMPAIGN = {
    "campaign_id": str, "campaign_name": str, "message_variation_id": str,
    "message_variation_name": str, "send_id": str, "dispatch_id": str,
}  # fmt: skip
CANVAS = {
    "canvas_id": str, "canvas_name": str, "canvas_variation_id": str,
    "canvas_variation_name": str, "canvas_step_id": str, "canvas_step_name": str,
    "canvas_step_message_variation_id": str,
}  # fmt: skip
MESSAGE = {**APP, **CAMPAIGN, **CANVAS}
EMAIL = {
    "email_address": str, "ip_pool": str, "user_agent": str, "url": str, "link_id": str,
    "link_alias": str, "bounce_reason": str, "machine_open": str, "is_amp": bool,
    "esp": str, "from_domain": str,
}  # fmt: skip
SMS = {
    "to_phone_number": str, "from_phone_number": str, "subscription_group_id": str,
    "message_extras": str, "error": str, "provider_error_code": str, "inbound_phone_number": str,
    "action": str, "message_body": str, "media_urls": "json",
}  # fmt: skip
PUSH = {"button_action_type": str, "button_id": str, "button_string": str, "ad_id": str}
IN_APP = {"button_id": str, "card_id": str}
WEBHOOK = {"url": str}
SUBSCRIPTION = {
    "subscription_group_id": str, "subscription_status": str, "channel": str,
    "state_change_source": str, "email_address": str, "phone_number": str,
}  # fmt: skip

EXACT: dict[str, dict] = {
    "users.behaviors.CustomEvent": {**APP, **AD, "name": str, "custom_properties": "json"},
    "users.behaviors.Purchase": {
        **APP, **AD, "product_id": str, "price": float, "currency": str,
        "purchase_properties": "json",
    },  # fmt: skip
    "users.behaviors.app.SessionStart": {**APP, "session_id": str},
    "users.behaviors.app.SessionEnd": {**APP, "session_id": str, "duration": float},
    "users.behaviors.app.FirstSession": {**APP, "session_id": str},
    "users.behaviors.subscription.GlobalStateChange": {**MESSAGE, **SUBSCRIPTION},
    "users.behaviors.subscriptiongroup.StateChange": {**MESSAGE, **SUBSCRIPTION},
    "users.campaigns.Conversion": {**APP, **CAMPAIGN, "conversion_behavior_index": float,
                                   "conversion_behavior": "json"},
    "users.campaigns.EnrollInControl": {**APP, **CAMPAIGN},
    "users.canvas.Entry": {**CANVAS, "in_control_group": bool},
    "users.canvas.Conversion": {**APP, **CANVAS, "conversion_behavior_index": float,
                                "conversion_behavior": "json"},
    "users.UserOrphan": {"orphaned_user_id": str, "orphaned_external_user_id": str},
}  # fmt: skip
PREFIXES: list[tuple[str, dict]] = [
    ("users.messages.email.", {**MESSAGE, **EMAIL}),
    ("users.messages.sms.", {**MESSAGE, **SMS}),
    ("users.messages.pushnotification.", {**MESSAGE, **PUSH}),
    ("users.messages.inappmessage.", {**MESSAGE, **IN_APP}),
    ("users.messages.contentcard.", {**MESSAGE, "content_card_id": str}),
    ("users.messages.webhook.", {**MESSAGE, **WEBHOOK}),
    ("users.messages.", MESSAGE),
    ("users.canvas.", {**APP, **CANVAS}),
    ("users.campaigns.", {**APP, **CAMPAIGN}),
]


def properties_of(event_type: str) -> dict:
    """The documented properties of ``event_type`` (name -> type); {} if unknown."""
    found = EXACT.get(event_type)
    if found is not None:
        return found
    for prefix, fields in PREFIXES:
        if event_type.startswith(prefix):
            return fields
    return {}


class MalformedBatch(ValueError):
    """The body is not ``{"events": [...]}`` of well-formed events; ``problems`` names each
    refused event by index and field."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


@dataclass(slots=True)
class ParsedBatch:
    events: list[dict]
    ids: list[str]


_VALID_TYPES: set[str] = set()  # event types already checked (a handful in practice)


def event_problem(index: int, event: object) -> str | None:
    """Why event ``index`` is malformed, or None."""
    if not isinstance(event, dict):
        return f"events[{index}]: not an object"
    kind = event.get("event_type")
    if kind not in _VALID_TYPES:
        if not isinstance(kind, str) or not EVENT_TYPE.fullmatch(kind):
            return f"events[{index}].event_type: a dotted name is required"
        if len(_VALID_TYPES) < 10_000:
            _VALID_TYPES.add(kind)
    event_id = event.get("id")
    if (
        not isinstance(event_id, str)
        or not 0 < len(event_id) <= MAX_EVENT_ID
        or "\x00" in event_id  # PostgreSQL text cannot hold it
    ):
        return f"events[{index}].id: a string of 1-{MAX_EVENT_ID} characters (no NUL) is required"
    at = event.get("time")
    if at is not None and (
        at.__class__ not in (int, float) or not 0 <= at <= MAX_TIME  # NaN fails the range
    ):
        return f"events[{index}].time: unix seconds between 1970 and 9999 expected"
    user, props = event.get("user"), event.get("properties")
    if user is not None and not isinstance(user, dict):
        return f"events[{index}].user: an object expected"
    if props is not None and not isinstance(props, dict):
        return f"events[{index}].properties: an object expected"
    return None


def parse_batch(data: object) -> ParsedBatch:
    """The events of a decoded body, or ``MalformedBatch`` naming every bad event. Batches
    over ``MAX_EVENTS_PER_BATCH`` are the caller's 413, checked before."""
    if not isinstance(data, dict) or not isinstance(data.get("events"), list):
        raise MalformedBatch('the body must be {"events": [...]}')
    events = data["events"]
    ids, problems = [], []
    known, numbers = _VALID_TYPES, (int, float)
    for index, e in enumerate(events):
        # The common case in one expression (no call per event); anything else is looked at
        # by event_problem, which names what is wrong.
        if (
            e.__class__ is dict
            and e.get("event_type") in known
            and (i := e.get("id")).__class__ is str
            and 0 < len(i) <= MAX_EVENT_ID
            and "\x00" not in i
            and ((t := e.get("time")) is None or (t.__class__ in numbers and 0 <= t <= MAX_TIME))
            and ((u := e.get("user")) is None or u.__class__ is dict)
            and ((p := e.get("properties")) is None or p.__class__ is dict)
        ):
            ids.append(i)
        elif (problem := event_problem(index, e)) is not None:
            problems.append(problem)
        else:
            ids.append(e["id"])
    if problems:
        more = f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
        raise MalformedBatch(
            f"{len(problems)} malformed event(s): " + "; ".join(problems[:5]) + more, problems
        )
    return ParsedBatch(events, ids)


def _coerce(value: object, kind: object) -> tuple[object, bool]:
    """``value`` as a column of ``kind``, and whether it fit (else it goes to ``extra``)."""
    if value is None:
        return None, True
    if kind is str:
        return (value, True) if isinstance(value, str) else (None, False)
    if kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
            return (number, True) if math.isfinite(number) else (None, False)
        return None, False
    if kind is bool:
        return (value, True) if isinstance(value, bool) else (None, False)
    return orjson.dumps(value).decode(), True  # json


def flatten(event: dict, received_at: float) -> dict:
    """One event as a row of its type's table."""
    user = event.get("user") or {}
    props = event.get("properties") or {}
    documented = properties_of(event["event_type"])
    at = event.get("time")
    row: dict = {
        "id": event["id"],
        "event_type": event["event_type"],
        "time": None if at is None else int(at * 1_000_000),  # microseconds, as landed
        "received_at": int(received_at * 1_000_000),
    }
    extra: dict = {}
    for name in USER_FIELDS:
        value, fits = _coerce(user.get(name), str)
        row[name] = value
        if not fits:
            extra.setdefault("user", {})[name] = user[name]
    for name, value in user.items():
        if name not in USER_FIELDS:
            extra.setdefault("user", {})[name] = value
    for name, kind in documented.items():
        value, fits = _coerce(props.get(name), kind)
        row[name] = value
        if not fits:
            extra.setdefault("properties", {})[name] = props[name]
    for name, value in props.items():
        if name not in documented:
            extra.setdefault("properties", {})[name] = value
    for name, value in event.items():
        if name not in ("id", "event_type", "time", "user", "properties"):
            extra[name] = value
    row["extra"] = orjson.dumps(extra).decode() if extra else None
    return row


def columns_of(event_type: str) -> list[tuple[str, object]]:
    """The landed table's columns, in order: (name, type)."""
    envelope = [("id", str), ("event_type", str), ("time", "timestamp"),
                ("received_at", "timestamp")]  # fmt: skip
    envelope += [(name, str) for name in USER_FIELDS]
    return [*envelope, *properties_of(event_type).items(), ("extra", "json")]
