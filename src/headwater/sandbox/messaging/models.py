"""MessagingBackend: API-triggered sends, the campaign and canvas catalogs, subscription
states. One method per endpoint, no HTTP.

Campaigns and canvases exist when declared: in the sandbox's settings
(``SandboxSettings.campaigns`` / ``canvases``) or through ``POST /_sandbox/campaigns`` and
``/_sandbox/canvases``. A send to anything else is refused as Braze refuses an unknown id.
Every accepted send is recorded with its ``dispatch_id``, its recipients and the trigger
properties each one got (``GET /_sandbox/sends``), in the same transaction as the
profiles its ``attributes`` changed: a 201 means the send is on disk.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable
from datetime import UTC, datetime

from headwater.braze.errors import BrazeError
from headwater.braze.identifiers import Identifier
from headwater.braze.messaging import CANVAS, Recipient, SendKind, TriggerSend
from headwater.braze.timeparse import format_braze_time
from headwater.braze.track import parse_track_request
from headwater.sandbox.store import Store
from headwater.sandbox.users.models import UsersBackend

PER_PAGE = 100
CATALOG_KINDS = {"campaign": "campaigns", "canvas": "canvases"}
CANVAS_NOTICES = {
    "paused": "The Canvas is paused. Resume the Canvas to ensure trigger requests will take effect.",
    "stopped": "The Canvas is paused. Resume the Canvas to ensure trigger requests will take effect.",
    "archived": "The Canvas is archived. Unarchive the Canvas to ensure trigger requests will "
    "take effect.",
}
STATUSES = ("active", "paused", "stopped", "archived")


def declare(kind: str, raw: object, now: str) -> dict:
    """A campaign or canvas as declared (``{id?, name, tags?, api?, status?}``), filled in.
    Raises ValueError naming the field at fault."""
    if not isinstance(raw, dict):
        raise ValueError(f"a {kind} must be an object with at least a 'name'")
    unknown = set(raw) - {"id", "name", "tags", "api", "status", "description"}
    if unknown:
        raise ValueError(f"{kind}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{kind}: 'name' must be a non-empty string")
    item_id = raw.get("id") or secrets.token_hex(16)
    if not isinstance(item_id, str) or len(item_id) > 255:
        raise ValueError(f"{kind}: 'id' must be a string of at most 255 characters")
    tags = raw.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ValueError(f"{kind}: 'tags' must be an array of strings")
    api = raw.get("api", True)
    status = raw.get("status", "active")
    if not isinstance(api, bool):
        raise ValueError(f"{kind}: 'api' must be a boolean (API-triggered or not)")
    if status not in STATUSES:
        raise ValueError(f"{kind}: 'status' must be one of {', '.join(STATUSES)}")
    return {"id": item_id, "name": name, "tags": tags, "api": api, "status": status,
            "description": str(raw.get("description") or ""), "created_at": now,
            "last_edited": now}  # fmt: skip


class MessagingBackend:
    def __init__(self, store: Store, users: UsersBackend, declared: dict[str, list]) -> None:
        self.store = store
        self.users = users
        # Told of each recipient a send reached (channel, user, properties): the Currents
        # emitter posts them as users.messages.<channel>.Send events.
        self.on_sent: Callable[[str, dict, dict], None] | None = None
        self.declared: dict[str, dict[str, dict]] = {"campaign": {}, "canvas": {}}
        now = format_braze_time(datetime.now(UTC))
        for kind, items in declared.items():
            for raw in items or []:
                item = declare(kind, raw, now)
                self.declared[kind][item["id"]] = item

    # -- catalogs --------------------------------------------------------------------------

    def catalog(self, kind: str) -> list[dict]:
        """Settings' declarations, then the control API's (which win on the same id)."""
        items = dict(self.declared[kind])
        for item in self.store.catalog(kind):
            items[item["id"]] = item
        return list(items.values())

    def find(self, kind: str, item_id: str) -> dict | None:
        for item in self.catalog(kind):
            if item["id"] == item_id:
                return item
        return None

    def put(self, kind: str, raw: object) -> dict:
        now = format_braze_time(datetime.now(UTC))
        item = declare(kind, raw, now)
        self.store.put_catalog(kind, item, now)
        return item

    def listing(self, kind: str, params: dict) -> dict:
        """``/campaigns/list`` and ``/canvas/list``: 100 per page, oldest first by default,
        archived ones only with ``include_archived=true``."""
        page = str(params.get("page", "0"))
        if not (page.isascii() and page.isdigit()):
            raise BrazeError(400, "'page' must be a non-negative integer")
        direction = params.get("sort_direction", "asc")
        if direction not in ("asc", "desc"):
            raise BrazeError(400, "'sort_direction' must be asc or desc")
        archived = str(params.get("include_archived", "false")).lower()
        if archived not in ("true", "false"):
            raise BrazeError(400, "'include_archived' must be true or false")
        items = sorted(self.catalog(kind), key=lambda i: (i["created_at"], i["id"]))
        if archived == "false":
            items = [i for i in items if i["status"] != "archived"]
        edited_after = params.get("last_edit.time[gt]")
        if edited_after:
            items = [i for i in items if i["last_edited"] > str(edited_after)]
        if direction == "desc":
            items.reverse()
        start = int(page) * PER_PAGE
        listed = []
        for item in items[start : start + PER_PAGE]:
            row = {"id": item["id"], "last_edited": item["last_edited"], "name": item["name"]}
            if kind == "campaign":
                row["is_api_campaign"] = item["api"]
            row["tags"] = item["tags"]
            listed.append(row)
        return {CATALOG_KINDS[kind]: listed, "message": "success"}

    # -- trigger sends -----------------------------------------------------------------------

    def trigger_send(self, send: TriggerSend, key_name: str) -> dict:
        kind: SendKind = send.kind
        target = self.find(kind.name, send.target_id)
        if target is None or not target["api"]:
            raise BrazeError(400, kind.invalid_id)
        dispatch_id = secrets.token_hex(16)
        now = format_braze_time(datetime.now(UTC))
        recorded = [self._deliver(r, key_name) for r in send.recipients]
        record = {
            "dispatch_id": dispatch_id,
            "kind": kind.name,
            kind.id_field: send.target_id,
            "send_id": send.send_id,
            "broadcast": send.broadcast,
            "properties": send.properties,
            "recipients": recorded,
            "received_at": now,
            "key": key_name,
        }
        self.store.add_send(record, endpoint=kind.endpoint)
        if self.on_sent is not None:
            for recipient in recorded:
                if recipient["sent"]:
                    user = {"user_id": recipient["braze_id"]}
                    if "external_user_id" in recipient:
                        user["external_user_id"] = recipient["external_user_id"]
                    context = {kind.id_field: send.target_id, "dispatch_id": dispatch_id}
                    if send.send_id:
                        context["send_id"] = send.send_id
                    self.on_sent("email", user, context)
        answer = {"dispatch_id": dispatch_id, "message": "success"}
        if kind is CANVAS and target["status"] in CANVAS_NOTICES:
            answer["notice"] = CANVAS_NOTICES[target["status"]]
        return answer

    def _deliver(self, recipient: Recipient, key_name: str) -> dict:
        """Apply a recipient's attributes (creating the user when asked to), then say
        whether Braze would have sent to them: only to users that exist."""
        key, value = recipient.identifier
        if recipient.attributes:
            target = {"external_id" if key == "external_user_id" else key: value}
            obj = {**recipient.attributes, **target}
            obj["_update_existing_only"] = recipient.send_to_existing_only
            # Attributes Braze would refuse: the send goes ahead without them.
            with contextlib.suppress(BrazeError):
                self.users.users_track(parse_track_request({"attributes": [obj]}), key_name)
        profile = self.users.find(_identifier(key, value))
        return {
            key: value,
            "braze_id": profile["braze_id"] if profile else None,
            "sent": profile is not None,
            "properties": recipient.properties,
        }

    # -- subscription groups -----------------------------------------------------------------

    def subscription_status_set(self, body: dict) -> dict:
        group = body.get("subscription_group_id")
        if not isinstance(group, str) or not group:
            raise BrazeError(400, "'subscription_group_id' is required and must be a string")
        state = body.get("subscription_state")
        if state not in ("subscribed", "unsubscribed"):
            raise BrazeError(400, "'subscription_state' must be 'subscribed' or 'unsubscribed'")
        if body.get("email") is not None and body.get("phone") is not None:
            raise BrazeError(
                400,
                "Either an email address or a phone number should be provided, but not both.",
            )
        external_ids = _strings(body, "external_id")
        emails = _strings(body, "email")
        phones = _strings(body, "phone")
        if not (external_ids or emails or phones):
            raise BrazeError(400, "provide 'external_id', 'email' or 'phone'")
        profiles: dict[str, dict] = {}
        for value in external_ids:
            found = self.users.find(Identifier("external_id", value))
            if found:
                profiles[found["braze_id"]] = found
        for index, values in ((self.users.by_email, emails), (self.users.by_phone, phones)):
            for value in values:  # shared by several profiles: every one of them changes
                key = value.lower() if index is self.users.by_email else value
                for braze_id in index.get(key, ()):
                    if braze_id in self.users.profiles:
                        profiles[braze_id] = self.users.profiles[braze_id]
        now = format_braze_time(datetime.now(UTC))
        for profile in profiles.values():
            profile.setdefault("subscription_groups", {})[group] = state
            profile["updated_at"] = now
        self.store.write(
            list(profiles.values()), counters=[("requests", "subscription.status.set", 1)]
        )
        return {"message": "success"}

    def sends(self) -> list[dict]:
        return self.store.sends()


def _strings(body: dict, name: str) -> list[str]:
    value = body.get(name)
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise BrazeError(400, f"'{name}' must be a string or an array of strings")
    if len(value) > 50:
        raise BrazeError(400, f"'{name}' may hold at most 50 values")
    return value


def _identifier(key: str, value: object) -> Identifier:
    if key == "external_user_id":
        return Identifier("external_id", value)
    if key == "user_alias":
        return Identifier("user_alias", (value["alias_name"], value["alias_label"]))
    return Identifier(key, value)
