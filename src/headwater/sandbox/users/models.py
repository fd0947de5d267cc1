"""UsersBackend: the user-data endpoints' behaviour, one method per endpoint, no HTTP.

Identifier resolution follows Braze: one primary identifier (external_id, user_alias,
braze_id), else email or phone (the most recently updated profile with an external_id
wins, then the most recently updated). What a write does to a profile, and what it costs
in data points, comes from ``headwater.braze.profile``.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import orjson

from headwater.braze.errors import MSG_TOO_MANY_IDS, BrazeError
from headwater.braze.identifiers import Identifier, ObjectError, check_alias, identifier_of
from headwater.braze.limits import MAX_IDS_PER_REQUEST
from headwater.braze.profile import (
    EXPORT_FIELDS,
    apply_attributes,
    apply_event,
    apply_purchase,
    export_profile,
    merge_profile_into,
    new_profile,
)
from headwater.braze.timeparse import format_braze_time
from headwater.braze.track import TrackRequest
from headwater.sandbox.settings import SandboxSettings
from headwater.sandbox.store import Store
from headwater.sandbox.users import errors as msg

AliasKey = tuple[str, str]  # (alias_name, alias_label)

log = logging.getLogger("headwater.sandbox")

_ID_PROCESS = secrets.token_hex(5)
_ID_COUNTER = itertools.count(secrets.randbelow(1 << 24))


def _new_braze_id() -> str:
    """A 24-hex id shaped like Braze's (a MongoDB ObjectId: seconds, process, counter).
    Ids that grow with time also keep SQLite's inserts at the end of its index."""
    return f"{int(time.time()):08x}{_ID_PROCESS}{next(_ID_COUNTER) & 0xFFFFFF:06x}"


def _not_applied(exc: Exception) -> str:
    """A failure applying one validated object (a sandbox bug): logged, and answered as
    that object's error. A 500 after its neighbours were applied would make every caller
    retry the whole request and apply them again."""
    log.error("could not apply a /users/track object", exc_info=exc)
    return f"Internal error applying this object ({type(exc).__name__})"


class UsersBackend:
    # Called with (kind, profile, object) for the events and purchases each /users/track
    # applied (the sandbox's Currents emitter); None: nobody listens.
    on_applied: Callable[[list[tuple[str, dict, dict]]], None] | None = None

    def __init__(
        self, store: Store, settings: SandboxSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock  # for the export-lag fault; tests step it
        self.profiles: dict[str, dict] = {}
        self.by_external_id: dict[str, str] = {}
        self.by_alias: dict[AliasKey, str] = {}
        self.by_email: dict[str, set[str]] = {}
        self.by_phone: dict[str, set[str]] = {}
        self.created_monotonic: dict[str, float] = {}
        for profile in store.load_users():
            self._index(profile)

    # -- indexes ------------------------------------------------------------------------

    def _index(self, profile: dict) -> None:
        braze_id = profile["braze_id"]
        self.profiles[braze_id] = profile
        if profile.get("external_id"):
            self.by_external_id[profile["external_id"]] = braze_id
        for old_id in profile.get("deprecated_external_ids", ()):  # users/renames.py
            self.by_external_id.setdefault(old_id, braze_id)
        for alias in profile.get("user_aliases", []):
            self.by_alias[(alias["alias_name"], alias["alias_label"])] = braze_id
        if profile.get("email"):
            self.by_email.setdefault(profile["email"].lower(), set()).add(braze_id)
        if profile.get("phone"):
            self.by_phone.setdefault(profile["phone"], set()).add(braze_id)

    def _unindex(self, profile: dict) -> None:
        braze_id = profile["braze_id"]
        self.profiles.pop(braze_id, None)
        self.created_monotonic.pop(braze_id, None)
        if self.by_external_id.get(profile.get("external_id")) == braze_id:
            del self.by_external_id[profile["external_id"]]
        for alias in profile.get("user_aliases", []):
            self.by_alias.pop((alias["alias_name"], alias["alias_label"]), None)
        for value, index in (
            (profile.get("email"), self.by_email),
            (profile.get("phone"), self.by_phone),
        ):
            if value:
                ids = index.get(value.lower() if index is self.by_email else value)
                if ids:
                    ids.discard(braze_id)

    def _reindex_contact(self, profile: dict, old_email: str | None, old_phone: str | None) -> None:
        braze_id = profile["braze_id"]
        if old_email != profile.get("email"):
            if old_email:
                self.by_email.get(old_email.lower(), set()).discard(braze_id)
            if profile.get("email"):
                self.by_email.setdefault(profile["email"].lower(), set()).add(braze_id)
        if old_phone != profile.get("phone"):
            if old_phone:
                self.by_phone.get(old_phone, set()).discard(braze_id)
            if profile.get("phone"):
                self.by_phone.setdefault(profile["phone"], set()).add(braze_id)

    def _create(self, now: datetime, **identity) -> dict:
        profile = new_profile(_new_braze_id(), now)
        for key, value in identity.items():
            if key == "user_alias":
                profile["user_aliases"] = [{"alias_name": value[0], "alias_label": value[1]}]
            else:
                profile[key] = value
        self._index(profile)
        self.created_monotonic[profile["braze_id"]] = self.clock()
        return profile

    # -- resolution -----------------------------------------------------------------------

    def _by_contact(
        self, index: dict[str, set[str]], value: str, prioritization: list[str] | None = None
    ) -> dict | None:
        """Braze's rule for email/phone matches, or an explicit prioritization."""
        key = value.lower() if index is self.by_email else value
        candidates = [self.profiles[b] for b in index.get(key, ()) if b in self.profiles]
        if not candidates:
            return None
        if prioritization:
            return _prioritized(candidates, prioritization)
        identified = [p for p in candidates if p.get("external_id")]
        pool = identified or candidates
        return max(pool, key=lambda p: p["updated_at"])

    def find(self, ident: Identifier) -> dict | None:
        if ident.kind == "external_id":
            braze_id = self.by_external_id.get(ident.value)
        elif ident.kind == "user_alias":
            braze_id = self.by_alias.get(ident.value)
        elif ident.kind == "braze_id":
            braze_id = ident.value if ident.value in self.profiles else None
        elif ident.kind == "email":
            return self._by_contact(self.by_email, ident.value)
        else:
            return self._by_contact(self.by_phone, ident.value)
        return self.profiles.get(braze_id) if braze_id else None

    def _resolve_for_write(self, obj: dict, now: datetime) -> dict | None:
        """The profile a track object writes to, creating it where Braze would."""
        external_id = obj.get("external_id")
        if (
            type(external_id) is str
            and obj.get("user_alias") is None
            and obj.get("braze_id") is None
        ):
            ident = Identifier("external_id", external_id)  # validated already: the usual case
        else:
            ident = identifier_of(obj)
        profile = self.find(ident)
        if profile is not None:
            return profile
        explicit = obj.get("_update_existing_only")
        if ident.kind == "braze_id":
            return None  # braze_id never creates a profile
        if ident.kind == "user_alias":
            if explicit is False:  # aliases only create when asked to
                return self._create(now, user_alias=ident.value)
            return None
        if explicit is True:
            return None
        return self._create(now, **{ident.kind: ident.value})

    # -- /users/track -------------------------------------------------------------------

    def users_track(self, request: TrackRequest, key_name: str) -> dict[str, int]:
        """Apply a validated request; return data points spent, per attribute name."""
        now = datetime.now(UTC)
        received = format_braze_time(now)
        touched: dict[str, dict] = {}
        activity: list[tuple[str, str, bytes, str]] = []
        points: Counter[str] = Counter()
        by_attribute: Counter[str] = Counter()  # Braze's data points, per field
        max_items = self.settings.max_array_items
        failed: list[tuple[str, int, str]] = []
        applied: list[tuple[str, dict, dict]] = []  # events and purchases, for on_applied
        for index, obj in request.attributes:
            profile = None
            try:
                profile = self._resolve_for_write(obj, now)
                if profile is None:
                    continue
                old_email, old_phone = profile.get("email"), profile.get("phone")
                points["(total)"] += apply_attributes(
                    profile, obj, now=now, max_array_items=max_items, points_by_key=by_attribute
                )
                if old_email != profile.get("email") or old_phone != profile.get("phone"):
                    self._reindex_contact(profile, old_email, old_phone)
            except Exception as exc:
                failed.append(("attributes", index, _not_applied(exc)))
            if profile is not None:  # written even when it failed part-way: store = memory
                touched[profile["braze_id"]] = profile
        for name, kind, objects, apply in (
            ("events", "event", request.events, apply_event),
            ("purchases", "purchase", request.purchases, apply_purchase),
        ):
            for index, obj in objects:
                try:
                    profile = self._resolve_for_write(obj, now)
                    if profile is None:
                        continue
                    spent = apply(profile, obj, now=now)
                except Exception as exc:
                    failed.append((name, index, _not_applied(exc)))
                    continue
                points["(total)"] += spent
                by_attribute[f"{kind}:{obj.get('name') or obj.get('product_id')}"] += spent
                touched[profile["braze_id"]] = profile
                activity.append((profile["braze_id"], kind, orjson.dumps(obj), received))
                applied.append((kind, profile, obj))
        for name, index, reason in failed:
            request.refuse(name, index, reason)
        counters = [("data_points_by_key", key_name, points["(total)"])]
        counters += [("data_points_by_attribute", n, c) for n, c in by_attribute.items()]
        counters.append(("requests", "users.track", 1))
        self.store.write(list(touched.values()), activity=activity, counters=counters)
        if self.on_applied is not None and applied:
            self.on_applied(applied)  # the Currents emitter, once they are stored
        return {**by_attribute, "(total)": points["(total)"]}

    # -- /users/export/ids ----------------------------------------------------------------

    def _visible(self, profile: dict) -> bool:
        lag = self.settings.faults.export_lag_seconds
        created = self.created_monotonic.get(profile["braze_id"])
        return not lag or created is None or self.clock() - created >= lag

    def users_export_ids(self, body: dict) -> dict:
        external_ids = _list_of(body, "external_ids", str)
        aliases = _list_of(body, "user_aliases", dict)
        if len(external_ids) + len(aliases) > MAX_IDS_PER_REQUEST:
            raise BrazeError(400, MSG_TOO_MANY_IDS)
        singles = [k for k in ("device_id", "email_address", "phone") if body.get(k) is not None]
        if len(singles) > 1:
            raise BrazeError(400, msg.ONE_SELECTOR)
        fields = body.get("fields_to_export")
        if fields is not None:
            if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
                raise BrazeError(400, msg.FIELDS_TYPE)
            unknown = [f for f in fields if f not in EXPORT_FIELDS]
            if unknown:
                raise BrazeError(400, msg.unknown_fields(unknown))
        if not (external_ids or aliases or body.get("braze_id") or singles):
            raise BrazeError(400, msg.NO_IDENTIFIER)
        found: dict[str, dict] = {}
        invalid: list[str] = []
        for external_id in external_ids:
            profile = self.find(Identifier("external_id", external_id))
            if profile is not None and self._visible(profile):
                found[profile["braze_id"]] = profile
            else:
                invalid.append(external_id)
        for alias in aliases:
            try:
                profile = self.find(Identifier("user_alias", check_alias(alias)))
            except ObjectError as exc:
                raise BrazeError(400, exc.type) from None
            if profile is not None and self._visible(profile):
                found[profile["braze_id"]] = profile
        if isinstance(body.get("braze_id"), str):
            profile = self.profiles.get(body["braze_id"])
            if profile is not None and self._visible(profile):
                found[profile["braze_id"]] = profile
        for selector, index in (("email_address", self.by_email), ("phone", self.by_phone)):
            value = body.get(selector)
            if isinstance(value, str):
                key = value.lower() if index is self.by_email else value
                for braze_id in index.get(key, ()):
                    if self._visible(self.profiles[braze_id]):
                        found[braze_id] = self.profiles[braze_id]
        users = [export_profile(p, fields) for p in found.values()]
        answer: dict = {"message": "success", "users": users}
        if invalid:
            answer["invalid_user_ids"] = invalid
        return answer

    # -- aliases, identify, delete, merge --------------------------------------------------

    def users_alias_new(self, body: dict) -> dict:
        entries = _list_of(body, "user_aliases", dict, required=True)
        _cap(entries)
        now = datetime.now(UTC)
        touched: dict[str, dict] = {}
        errors = []
        for i, entry in enumerate(entries):
            try:
                name, label = check_alias(entry)
            except ObjectError as exc:
                errors.append({"type": exc.type, "index": i})
                continue
            if (name, label) in self.by_alias:
                errors.append({"type": msg.ALIAS_EXISTS, "index": i})
                continue
            external_id = entry.get("external_id")
            if external_id is not None and not isinstance(external_id, str):
                errors.append({"type": msg.EXTERNAL_ID_REQUIRED, "index": i})
                continue
            if external_id is None:
                profile = self._create(now, user_alias=(name, label))
            else:
                profile = (
                    self.by_external_id.get(external_id)
                    and self.profiles[self.by_external_id[external_id]]
                )
                if not profile:
                    continue  # nothing happens when the user does not exist
                aliases = [a for a in profile.get("user_aliases", []) if a["alias_label"] != label]
                for old in profile.get("user_aliases", []):
                    if old["alias_label"] == label:
                        self.by_alias.pop((old["alias_name"], label), None)
                profile["user_aliases"] = [*aliases, {"alias_name": name, "alias_label": label}]
                self.by_alias[(name, label)] = profile["braze_id"]
                profile["updated_at"] = format_braze_time(now)
            touched[profile["braze_id"]] = profile
        self.store.write(list(touched.values()), counters=[("requests", "users.alias.new", 1)])
        answer: dict = {"aliases_processed": len(entries) - len(errors), "message": "success"}
        if errors:
            answer["errors"] = errors
        return answer

    def users_identify(self, body: dict) -> dict:
        aliases = _list_of(body, "aliases_to_identify", dict)
        emails = _list_of(body, "emails_to_identify", dict)
        phones = _list_of(body, "phone_numbers_to_identify", dict)
        _cap([*aliases, *emails, *phones])
        if not (aliases or emails or phones):
            raise BrazeError(400, msg.IDENTIFY_EMPTY)
        now = datetime.now(UTC)
        touched: dict[str, dict] = {}
        merged: list[tuple[str, str]] = []  # (folded braze_id, kept braze_id)
        errors: list[dict] = []
        processed = 0
        for i, entry in enumerate(aliases):
            external_id = entry.get("external_id")
            try:
                alias = check_alias(entry.get("user_alias"))
            except ObjectError as exc:
                errors.append({"type": exc.type, "index": i})
                continue
            if not isinstance(external_id, str) or not external_id:
                errors.append({"type": msg.EXTERNAL_ID_REQUIRED, "index": i})
                continue
            source = self.find(Identifier("user_alias", alias))
            if source is None:
                errors.append({"type": msg.ALIAS_NOT_FOUND, "index": i})
                continue
            processed += self._identify(
                source, external_id, now, touched, merged, alias_label=alias[1]
            )
        for field, index, entries in (
            ("email", self.by_email, emails),
            ("phone", self.by_phone, phones),
        ):
            for i, entry in enumerate(entries):
                external_id, value = entry.get("external_id"), entry.get(field)
                prioritization = entry.get("prioritization")
                if not isinstance(external_id, str) or not isinstance(value, str):
                    errors.append({"type": msg.identify_fields(field), "index": i})
                    continue
                if not _valid_prioritization(prioritization):
                    errors.append({"type": msg.PRIORITIZATION, "index": i})
                    continue
                source = self._by_contact(index, value, prioritization)
                if source is None or source.get("external_id") == external_id:
                    continue
                processed += self._identify(source, external_id, now, touched, merged)
        self._write_merges(touched, merged, "users.identify")
        answer: dict = {"aliases_processed": processed, "message": "success"}
        if errors:
            answer["errors"] = errors
        return answer

    def _identify(self, source, external_id, now, touched, merged, alias_label=None) -> int:
        """Fold an anonymous profile into the one with ``external_id`` (or name it)."""
        target_id = self.by_external_id.get(external_id)
        if target_id is None:
            if source.get("external_id"):
                return 0  # already identified as someone else
            source["external_id"] = external_id
            self.by_external_id[external_id] = source["braze_id"]
            source["updated_at"] = format_braze_time(now)
            touched[source["braze_id"]] = source
            return 1
        target = self.profiles[target_id]
        if target is source:
            return 0
        if alias_label and any(
            a["alias_label"] == alias_label for a in target.get("user_aliases", [])
        ):
            return 0  # the identified user already has an alias with that label: no merge
        self._merge(source, target, now, touched, merged)
        return 1

    def _merge(self, source: dict, target: dict, now, touched, merged) -> None:
        self._unindex(source)
        merge_profile_into(target, source)
        target["updated_at"] = format_braze_time(now)
        self._index(target)
        touched.pop(source["braze_id"], None)
        touched[target["braze_id"]] = target
        merged.append((source["braze_id"], target["braze_id"]))

    def _write_merges(self, touched: dict, merged: list[tuple[str, str]], endpoint: str) -> None:
        """One transaction: kept profiles, folded ones gone, their events moved over."""
        self.store.write(
            list(touched.values()),
            deleted=[source for source, _target in merged],
            moved=merged,
            counters=[("requests", endpoint, 1)],
        )

    def users_delete(self, body: dict) -> dict:
        kinds = [k for k in msg.DELETE_KINDS if body.get(k) is not None]
        if len(kinds) != 1:
            raise BrazeError(400, msg.DELETE_ONE_KIND)
        kind = kinds[0]
        values = body[kind]
        if not isinstance(values, list):
            raise BrazeError(400, msg.must_be_array(kind))
        _cap(values)
        doomed: dict[str, dict] = {}
        for value in values:
            for profile in self._delete_targets(kind, value):
                doomed[profile["braze_id"]] = profile
        for profile in doomed.values():
            self._unindex(profile)
        self.store.write([], deleted=list(doomed), counters=[("requests", "users.delete", 1)])
        return {"deleted": len(doomed), "message": "success"}

    def _delete_targets(self, kind: str, value: object) -> list[dict]:
        if kind == "external_ids" and isinstance(value, str):
            found = self.find(Identifier("external_id", value))
        elif kind == "braze_ids" and isinstance(value, str):
            found = self.profiles.get(value)
        elif kind == "user_aliases":
            try:
                found = self.find(Identifier("user_alias", check_alias(value)))
            except ObjectError as exc:
                raise BrazeError(400, exc.type) from None
        elif kind in ("email_addresses", "phone_numbers") and isinstance(value, dict):
            field = "email" if kind == "email_addresses" else "phone"
            index = self.by_email if field == "email" else self.by_phone
            if not isinstance(value.get(field), str):
                raise BrazeError(400, msg.identify_fields(field))
            prioritization = value.get("prioritization")
            if not _valid_prioritization(prioritization):  # required with email and phone
                raise BrazeError(400, msg.PRIORITIZATION)
            found = self._by_contact(index, value[field], prioritization)
        else:
            raise BrazeError(400, msg.bad_delete_item(kind))
        return [found] if found else []

    def users_merge(self, body: dict) -> dict:
        updates = body.get("merge_updates")
        if not isinstance(updates, list) or not all(isinstance(u, dict) for u in updates):
            raise BrazeError(400, msg.MERGE_ARRAY)
        if len(updates) > MAX_IDS_PER_REQUEST:
            raise BrazeError(400, msg.MERGE_TOO_MANY)
        for update in updates:
            if set(update) != {"identifier_to_merge", "identifier_to_keep"}:
                raise BrazeError(400, msg.MERGE_KEYS)
            for side in update.values():
                if not _merge_identifier_ok(side):
                    raise BrazeError(400, msg.MERGE_IDENTIFIERS)
                contact = "email" in side or "phone" in side
                if contact and not _valid_prioritization(side.get("prioritization")):
                    raise BrazeError(400, msg.PRIORITIZATION)  # required with email and phone
        now = datetime.now(UTC)
        touched: dict[str, dict] = {}
        merged: list[tuple[str, str]] = []  # (folded braze_id, kept braze_id)
        for update in updates:
            source = self._merge_side(update["identifier_to_merge"])
            target = self._merge_side(update["identifier_to_keep"])
            if source is None or target is None or source is target:
                continue
            self._merge(source, target, now, touched, merged)
        self._write_merges(touched, merged, "users.merge")
        return {"message": "success"}

    def _merge_side(self, side: dict) -> dict | None:
        if "external_id" in side:
            return self.find(Identifier("external_id", side["external_id"]))
        if "user_alias" in side:
            return self.find(Identifier("user_alias", check_alias(side["user_alias"])))
        if "email" in side:
            return self._by_contact(self.by_email, side["email"], side.get("prioritization"))
        return self._by_contact(self.by_phone, side["phone"], side.get("prioritization"))

    # -- inspection (control API) -----------------------------------------------------------

    def list_users(self, limit: int, offset: int) -> list[dict]:
        profiles = sorted(self.profiles.values(), key=lambda p: (p["created_at"], p["braze_id"]))
        return profiles[offset : offset + limit]

    def get_user(self, identifier: str) -> dict | None:
        braze_id = self.by_external_id.get(identifier) or (
            identifier if identifier in self.profiles else None
        )
        if braze_id is None:
            return None
        profile = self.profiles[braze_id]
        activity = self.store.activity_of(braze_id)
        return {
            **profile,
            "events": [a for a in activity if a["kind"] == "event"],
            "purchase_log": [a for a in activity if a["kind"] == "purchase"],
        }

    def reset(self) -> None:
        self.profiles.clear()
        self.by_external_id.clear()
        self.by_alias.clear()
        self.by_email.clear()
        self.by_phone.clear()
        self.created_monotonic.clear()


def _list_of(body: dict, name: str, kind: type, *, required: bool = False) -> list:
    value = body.get(name)
    if value is None:
        if required:
            raise BrazeError(400, msg.must_be_array(name))
        return []
    if not isinstance(value, list) or not all(isinstance(v, kind) for v in value):
        raise BrazeError(400, msg.must_be_array(name))
    return value


def _cap(items: list) -> None:
    if len(items) > MAX_IDS_PER_REQUEST:
        raise BrazeError(400, msg.TOO_MANY_ITEMS)


def _valid_prioritization(value: object) -> bool:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        return False
    allowed = {"identified", "unidentified", "most_recently_updated", "least_recently_updated"}
    return set(value) <= allowed and not {"identified", "unidentified"} <= set(value)


def _prioritized(candidates: list[dict], prioritization: list[str]) -> dict | None:
    pool = candidates
    for rule in prioritization:
        if rule == "identified":
            pool = [p for p in pool if p.get("external_id")]
        elif rule == "unidentified":
            pool = [p for p in pool if not p.get("external_id")]
        elif rule == "most_recently_updated" and pool:
            pool = [max(pool, key=lambda p: p["updated_at"])]
        elif rule == "least_recently_updated" and pool:
            pool = [min(pool, key=lambda p: p["updated_at"])]
    return pool[0] if len(pool) == 1 else None  # still ambiguous: nothing happens


def _merge_identifier_ok(side: object) -> bool:
    if (
        not isinstance(side, dict)
        or len({"external_id", "user_alias", "email", "phone"} & set(side)) != 1
    ):
        return False
    if "external_id" in side:
        return isinstance(side["external_id"], str)
    if "user_alias" in side:
        alias = side["user_alias"]
        try:
            check_alias(alias)
        except ObjectError:
            return False
        return True
    return isinstance(side["email" if "email" in side else "phone"], str)
