"""API-triggered sends (``/campaigns/trigger/send``, ``/canvas/trigger/send``): the rules
of a body, checked once for the sandbox (which answers as Braze does) and the client
(which refuses to send what Braze would refuse, before it costs a request).

The rules, from Braze's endpoint pages: at most 50 recipients; each names its user by
exactly one of ``external_user_id``, ``user_alias``, ``email`` or ``braze_id``;
``send_to_existing_only`` defaults to true, is not supported with aliases, and false needs
``attributes`` (the user is created from them); trigger properties (campaigns) and
``context`` / ``canvas_entry_properties`` (canvases), top-level and per recipient, are
objects of at most 50 KB each; ``broadcast: true`` forbids recipients and leaving them out
requires it. Braze has no idempotency key for these sends: every accepted request is a
send, with one ``dispatch_id``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from headwater.braze.errors import MSG_TOO_MANY_IDS, BrazeError
from headwater.braze.identifiers import ObjectError, check_alias, check_external_id
from headwater.braze.limits import MAX_IDS_PER_REQUEST, MAX_TRIGGER_PROPERTIES_BYTES
from headwater.braze.values import json_size

MAX_RECIPIENTS_PER_REQUEST = MAX_IDS_PER_REQUEST
MSG_INVALID_CAMPAIGN_ID = "Invalid Campaign ID"
MSG_INVALID_CANVAS_ID = "Invalid Canvas ID"
MSG_NO_RECIPIENTS = "No Recipients"
MSG_RECIPIENTS_ARRAY = "'recipients' must be an array of objects"
MSG_BROADCAST_WITH_RECIPIENTS = "'recipients' cannot be given when 'broadcast' is true"
MSG_RECIPIENT_IDENTIFIER = (
    "each recipient needs exactly one of 'external_user_id', 'user_alias', 'email' or 'braze_id'"
)
MSG_EXISTING_ONLY_TYPE = "'send_to_existing_only' must be a boolean"
MSG_EXISTING_ONLY_ALIAS = "'send_to_existing_only' false is not supported for user aliases"
MSG_EXISTING_ONLY_ATTRIBUTES = "'attributes' are required when 'send_to_existing_only' is false"
MSG_ATTRIBUTES_TYPE = "'attributes' must be an object"
MSG_CANVAS_ATTACHMENTS = "'attachments' are not supported for Canvas"
MSG_BROADCAST_TYPE = "'broadcast' must be a boolean"
RECIPIENT_KEYS = ("external_user_id", "user_alias", "email", "braze_id")


@dataclass(frozen=True)
class SendKind:
    """What differs between a campaign and a canvas send."""

    name: str  # campaign | canvas
    endpoint: str  # the endpoint table's name
    id_field: str
    properties_fields: tuple[str, ...]  # the first is the current name
    invalid_id: str
    attachments: bool


CAMPAIGN = SendKind(
    "campaign",
    "campaigns.trigger.send",
    "campaign_id",
    ("trigger_properties",),
    MSG_INVALID_CAMPAIGN_ID,
    True,
)
# Older API versions name Canvas properties ``canvas_entry_properties``; both are accepted.
CANVAS = SendKind(
    "canvas",
    "canvas.trigger.send",
    "canvas_id",
    ("canvas_entry_properties", "context"),
    MSG_INVALID_CANVAS_ID,
    False,
)


def properties_too_large(name: str, size: int) -> str:
    return (
        f"'{name}' is {size:,} bytes; Braze accepts at most "
        f"{MAX_TRIGGER_PROPERTIES_BYTES:,} bytes (50 KB)"
    )


def recipient_error(index: int, message: str) -> str:
    return f"recipients[{index}]: {message}"


@dataclass
class Recipient:
    """One validated recipient: who, and what to send them."""

    identifier: tuple[str, object]  # (external_user_id | user_alias | email | braze_id, value)
    properties: dict = field(default_factory=dict)  # top-level merged with the recipient's
    send_to_existing_only: bool = True
    attributes: dict | None = None
    prioritization: list | None = None


@dataclass
class TriggerSend:
    kind: SendKind
    target_id: str
    broadcast: bool
    properties: dict
    recipients: list[Recipient]
    send_id: str | None = None


def _properties(holder: dict, kind: SendKind, where: str) -> dict:
    merged: dict = {}
    for name in kind.properties_fields:
        value = holder.get(name)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise BrazeError(400, f"{where}'{name}' must be an object")
        try:
            size = json_size(value)
        except TypeError:  # orjson refuses nesting past 254 levels
            raise BrazeError(400, f"{where}'{name}' is nested too deeply") from None
        if size > MAX_TRIGGER_PROPERTIES_BYTES:
            raise BrazeError(400, where + properties_too_large(name, size))
        merged.update(value)
    return merged


def _recipient(index: int, raw: object, kind: SendKind, top: dict) -> Recipient:
    def fail(message: str) -> BrazeError:
        return BrazeError(400, recipient_error(index, message))

    if not isinstance(raw, dict):
        raise BrazeError(400, MSG_RECIPIENTS_ARRAY)
    present = [k for k in RECIPIENT_KEYS if raw.get(k) is not None]
    if len(present) != 1:
        raise fail(MSG_RECIPIENT_IDENTIFIER)
    key = present[0]
    value = raw[key]
    try:
        if key == "external_user_id":
            check_external_id(value)
        elif key == "user_alias":
            value = dict(zip(("alias_name", "alias_label"), check_alias(value), strict=True))
        elif not isinstance(value, str) or not value:
            raise ObjectError(f"'{key}' must be a non-empty string")
    except ObjectError as exc:
        raise fail(exc.type.replace("external_id", "external_user_id")) from None
    existing_only = raw.get("send_to_existing_only", True)
    if not isinstance(existing_only, bool):
        raise fail(MSG_EXISTING_ONLY_TYPE)
    attributes = raw.get("attributes")
    if attributes is not None and not isinstance(attributes, dict):
        raise fail(MSG_ATTRIBUTES_TYPE)
    if not existing_only:
        if key == "user_alias":
            raise fail(MSG_EXISTING_ONLY_ALIAS)
        if not attributes:
            raise fail(MSG_EXISTING_ONLY_ATTRIBUTES)
    prioritization = raw.get("prioritization")
    if prioritization is not None and not isinstance(prioritization, list):
        raise fail("'prioritization' must be an array")
    own = _properties(raw, kind, f"recipients[{index}]: ")
    return Recipient((key, value), {**top, **own}, existing_only, attributes, prioritization)


def parse_trigger_send(body: object, kind: SendKind) -> TriggerSend:
    """Validate a decoded body; raises BrazeError(400) with Braze's message, naming the
    recipient at fault. The campaign/canvas id is checked for shape only: whether it
    exists is the caller's (the sandbox's) business."""
    if not isinstance(body, dict):
        raise BrazeError(400, "Bad Request")
    target = body.get(kind.id_field)
    if not isinstance(target, str) or not target:
        raise BrazeError(400, kind.invalid_id)
    broadcast = body.get("broadcast", False)
    if not isinstance(broadcast, bool):
        raise BrazeError(400, MSG_BROADCAST_TYPE)
    if body.get("attachments") is not None and not kind.attachments:
        raise BrazeError(400, MSG_CANVAS_ATTACHMENTS)
    top = _properties(body, kind, "")
    raw = body.get("recipients")
    if raw is None:
        if not broadcast:
            raise BrazeError(400, MSG_NO_RECIPIENTS)
        raw = []
    elif broadcast:
        raise BrazeError(400, MSG_BROADCAST_WITH_RECIPIENTS)
    if not isinstance(raw, list):
        raise BrazeError(400, MSG_RECIPIENTS_ARRAY)
    if not raw and not broadcast:
        raise BrazeError(400, MSG_NO_RECIPIENTS)
    if len(raw) > MAX_RECIPIENTS_PER_REQUEST:
        raise BrazeError(400, MSG_TOO_MANY_IDS)
    recipients = [_recipient(i, r, kind, top) for i, r in enumerate(raw)]
    send_id = body.get("send_id")
    if send_id is not None and not isinstance(send_id, str):
        raise BrazeError(400, "'send_id' must be a string")
    return TriggerSend(kind, target, broadcast, top, recipients, send_id)


def check_recipient(raw: object, kind: SendKind) -> Recipient:
    """One recipient checked on its own (BrazeError naming what is wrong), so a caller can
    keep a bad one out of a request instead of losing its 49 neighbours to a 400."""
    try:
        return _recipient(0, raw, kind, {})
    except BrazeError as exc:
        raise BrazeError(400, exc.message.removeprefix("recipients[0]: ")) from None


def recipient_of(
    identifier: dict,
    *,
    properties: dict | None = None,
    send_to_existing_only: bool = True,
    attributes: dict | None = None,
    kind: SendKind = CAMPAIGN,
) -> dict:
    """A recipient object from a Braze identifier (``{"external_id": ...}`` or
    ``{"user_alias": {...}}``, as the rest of Headwater writes them)."""
    recipient: dict = {}
    if "external_id" in identifier:
        recipient["external_user_id"] = identifier["external_id"]
    elif "user_alias" in identifier:
        recipient["user_alias"] = identifier["user_alias"]
    elif "braze_id" in identifier:
        recipient["braze_id"] = identifier["braze_id"]
    elif "email" in identifier:
        recipient["email"] = identifier["email"]
    else:
        raise ValueError(f"not a Braze identifier: {sorted(identifier)}")
    if properties:
        recipient[kind.properties_fields[0]] = properties
    if "user_alias" not in recipient:
        recipient["send_to_existing_only"] = send_to_existing_only
    if attributes:
        recipient["attributes"] = attributes
    return recipient
