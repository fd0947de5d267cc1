"""Extole's generic outbound webhooks: program events and reward events.

Program events (``created_share_link``, ``shared``, ``converted``, ``subscribed``,
``unsubscribed``, ...) carry the person and the event's data; reward events carry a
``reward_id``, the reward ``state`` and a ``data`` object (face value, coupon code, ...).
Each becomes one custom event named ``extole_<event>`` or ``extole_reward_<state>``, plus an
attributes object with what Extole knows about the person (email, names, share link, city,
state, country, phone). Which Extole field becomes the Braze ``external_id`` is the stream's
``external_id_from`` (``partner_user_id`` by default, or ``email``); without one the email
identifies the user and the identity step resolves it.

Only reward states listed in ``reward_states`` are forwarded (FULFILLED by default).

Payload shape accepted (fields may also sit at the top level or in ``data``)::

    {"event_id": "...", "event_name": "shared", "event_time": "2024-05-02T10:00:00Z",
     "program_label": "refer-a-friend", "funnel": "advocate",
     "person": {"email", "first_name", "last_name", "partner_user_id", "city", "state",
                "country", "phone"},
     "data": {"share_channel": "EMAIL", "share_link": "...", "share_code": "..."}}
    {"reward_id": "...", "state": "FULFILLED", "event_time": "...", "person": {...},
     "data": {"face_value": "10.00", "face_value_type": "USD", "coupon_code": "..."}}
"""

from __future__ import annotations

from typing import Any

from headwater.config.streams import StreamConfig
from headwater.errors import RowError
from headwater.streams.mapping import Mapped, bounded
from headwater.streams.presets.common import braze_time, number_or_text, property_value, snake
from headwater.streams.text import text_of

PARTNER = "extole"
# Extole field -> Braze attribute, read from the person (or the event's data).
PERSON_ATTRIBUTES = {
    "email": "email",
    "first_name": "first_name",
    "last_name": "last_name",
    "phone": "phone",
    "city": "home_city",
    "country": "country",
    "state": "extole_state",
    "share_link": "extole_share_link",
    "share_code": "extole_share_code",
}
# Extole field -> event property.
PROPERTIES = {
    "program_label": "program",
    "program": "program",
    "funnel": "funnel",
    "journey_name": "funnel",
    "share_channel": "share_channel",
    "channel": "share_channel",
    "share_link": "share_link",
    "share_code": "share_code",
    "face_value": "face_value",
    "face_value_type": "face_value_type",
    "coupon_code": "coupon_code",
    "code": "coupon_code",
    "reward_id": "reward_id",
    "reward_supplier_name": "reward_name",
    "rewardee_role": "rewardee_role",
    "earned_event_value": "earned_event_value",
    "subscription_group": "subscription_group",
    "subscription_group_id": "subscription_group",
    "partner_event_id": "partner_event_id",
    "cart_value": "cart_value",
}
NUMERIC = {"face_value", "earned_event_value", "cart_value"}


# Fields that mean something else outside the person: a reward's top-level ``state`` is
# the reward's state (EARNED, FULFILLED), not the person's region.
PERSON_ONLY = {"state"}


def _found(payload: dict, data: dict, person: dict, *names: str) -> tuple[str, Any]:
    """The first of ``names`` present (person first, then the body, then its data), with
    its value; ``(names[0], None)`` when none is."""
    for source in (person, payload, data):
        for name in names:
            value = source.get(name)
            if value not in (None, ""):
                return name, value
    return names[0], None


def _pick(payload: dict, data: dict, person: dict, *names: str) -> Any:
    return _found(payload, data, person, *names)[1]


def _text(payload: dict, data: dict, person: dict, *names: str) -> str | None:
    """A field that must be text (an id, a name, an email), or None when absent."""
    name, value = _found(payload, data, person, *names)
    return None if value is None else text_of(value, name)


def map_payload(payload: Any, stream: str, config: StreamConfig) -> Mapped:
    if isinstance(payload, list):  # a batch: one level only, each item one webhook body
        mapped = Mapped()
        for index, item in enumerate(bounded(payload, config.max_items, "the batch")):
            if not isinstance(item, dict):
                raise RowError("each Extole webhook in a batch must be a JSON object", row=index)
            try:
                mapped.objects.extend(_one(item, config).objects)
            except RowError as exc:
                exc.row = index if exc.row is None else exc.row
                raise
        return mapped
    if not isinstance(payload, dict):
        raise RowError("an Extole webhook body must be a JSON object")
    return _one(payload, config)


def _one(payload: dict, config: StreamConfig) -> Mapped:
    data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
    person = payload.get("person") if isinstance(payload.get("person"), dict) else {}
    prefix = config.event_prefix if config.event_prefix is not None else "extole_"

    reward_id = _text(payload, data, {}, "reward_id")
    if reward_id is not None:
        state = _text(payload, data, {}, "state", "reward_state", "status") or "FULFILLED"
        if state.upper() not in config.reward_states:
            return Mapped(skipped=f"reward state {state.upper()} is not forwarded")
        name = f"{prefix}reward_{snake(state)}"
        partner_id = f"reward:{reward_id}:{state.upper()}"
    else:
        raw_name = _text(payload, data, {}, "event_name", "event_type", "type", "name")
        if not raw_name:
            raise RowError("an Extole event needs event_name (or reward_id)", field="event_name")
        name = f"{prefix}{snake(raw_name)}"
        event_id = _text(payload, data, {}, "event_id", "id")
        partner_id = f"event:{event_id}" if event_id is not None else None

    identity: dict[str, Any] = {}
    email = _text(payload, data, person, "email", "email_address")
    partner_user_id = _text(payload, data, person, "partner_user_id")
    if config.external_id_from == "partner_user_id" and partner_user_id is not None:
        identity["external_id"] = partner_user_id
    elif config.external_id_from == "email" and email:
        identity["external_id"] = email
    elif email:
        identity["email"] = email
    else:
        raise RowError(
            f"no {config.external_id_from} and no email to identify the Extole user",
            field=config.external_id_from,
        )

    properties: dict[str, Any] = {"partner": PARTNER}
    time_value = _pick(payload, data, {}, "event_time", "created_date", "timestamp", "time")
    properties["event_time"] = braze_time(time_value, "event_time")
    for field, prop in PROPERTIES.items():
        value = _pick(payload, data, {}, field)
        if value is not None and prop not in properties:
            properties[prop] = number_or_text(value) if field in NUMERIC else value
    if reward_id is not None:
        properties["reward_state"] = state.upper()
    for key, value in data.items():  # the partner's custom data keys ride along
        custom = key not in PROPERTIES and key not in properties and not key.startswith("$")
        if custom and isinstance(value, str | int | float | bool):
            properties[key] = property_value(value)

    mapped = Mapped()
    event = {
        **identity,
        "name": name,
        "time": properties["event_time"],
        "properties": {k: property_value(v) for k, v in properties.items()},
    }
    # The identity rides along: for an email-only person the email is both how the user is
    # found and the profile's email (an alias profile needs it to be found again).
    attributes: dict[str, Any] = {**identity}
    for field, attribute in PERSON_ATTRIBUTES.items():
        if field in PERSON_ONLY:
            value = _pick({}, {}, person, field)
        else:
            value = _pick(payload, data, person, field)
        if value is not None:
            attributes[attribute] = property_value(text_of(value, field))
    group = _text(payload, data, {}, "subscription_group_id", "subscription_group")
    raw_event = snake(_text(payload, data, {}, "event_name", "type") or "")
    if group and raw_event in ("subscribed", "unsubscribed"):
        attributes["subscription_groups"] = [
            {"subscription_group_id": group, "subscription_state": raw_event}
        ]
    if set(attributes) - set(identity):
        mapped.add("attributes", attributes)
    mapped.add("events", event, partner_id)
    return mapped
