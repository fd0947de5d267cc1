"""Braze's semantics applied to a stored profile: what an attributes, event or purchase
object does to a user, how many data points it costs, and what export returns.

Pure functions over JSON-serialisable dicts, so the sandbox can keep profiles in any store
and tests can check the rules without a server. Objects are assumed validated
(``headwater.braze.track``).
"""

from __future__ import annotations

import copy
import random
from datetime import datetime
from functools import lru_cache
from zoneinfo import available_timezones

from headwater.braze.datapoints import FREE_FIELDS, attribute_data_points, data_points
from headwater.braze.limits import DEFAULT_MAX_ARRAY_ITEMS
from headwater.braze.timeparse import format_braze_time, format_export_time, parse_braze_time
from headwater.braze.track import CONTROL_KEYS, STANDARD_FIELDS
from headwater.braze.values import GENDERS

TIME_FIELDS = frozenset(
    {"date_of_first_session", "date_of_last_session", "marked_email_as_spam_at"}
)
_TIME_ZONES = frozenset(available_timezones())
COUNTRY_NAMES = {
    "united states": "US", "usa": "US", "united kingdom": "GB", "uk": "GB", "great britain": "GB",
    "france": "FR", "germany": "DE", "spain": "ES", "italy": "IT", "netherlands": "NL",
    "belgium": "BE", "australia": "AU", "canada": "CA", "ireland": "IE", "portugal": "PT",
    "japan": "JP", "china": "CN", "india": "IN", "brazil": "BR", "mexico": "MX",
    "switzerland": "CH", "austria": "AT", "sweden": "SE", "norway": "NO", "denmark": "DK",
    "finland": "FI", "poland": "PL", "new zealand": "NZ", "singapore": "SG", "south africa": "ZA",
}  # fmt: skip

# Every field /users/export/ids can return, in the order we write them out.
EXPORT_ORDER = tuple(
    """external_id braze_id user_aliases first_name last_name email phone dob gender country
    home_city language time_zone email_subscribe push_subscribe created_at random_bucket
    total_revenue custom_attributes custom_events purchases apps devices push_tokens
    last_coordinates campaigns_received canvases_received cards_clicked attributed_campaign
    attributed_source attributed_adgroup attributed_ad uninstalled_at""".split()
)
EXPORT_FIELDS = frozenset(EXPORT_ORDER)
_EMPTY_LIST_FIELDS = ("apps", "campaigns_received", "canvases_received", "cards_clicked", "devices")


def new_profile(braze_id: str, now: datetime) -> dict:
    stamp = format_braze_time(now)
    return {
        "braze_id": braze_id,
        "external_id": None,
        "user_aliases": [],
        "custom_attributes": {},
        "custom_events": {},
        "purchases": {},
        "total_revenue": 0.0,
        "random_bucket": random.randrange(10000),
        "created_at": stamp,
        "updated_at": stamp,
    }


def _country(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    if len(value) == 2 and value.isalpha():
        return value.upper()
    return COUNTRY_NAMES.get(value.strip().lower())


def _set_standard(profile: dict, key: str, value: object) -> None:
    if key == "country":
        value = _country(value) if value is not None else None
    elif key == "gender" and isinstance(value, str):
        value = GENDERS[value.lower()]
    elif key == "time_zone":
        if value is not None and value not in _TIME_ZONES:
            return  # Braze ignores invalid zones
    elif key in TIME_FIELDS and value is not None:
        value = format_braze_time(parse_braze_time(value))
    elif key == "current_location" and isinstance(value, dict):
        profile["last_coordinates"] = [value["longitude"], value["latitude"]]
        return
    elif key == "subscription_groups":
        groups = profile.setdefault("subscription_groups", {})
        for group in value:
            groups[group["subscription_group_id"]] = group["subscription_state"]
        return
    elif key == "push_tokens":
        profile.setdefault("push_tokens", []).extend(copy.deepcopy(value))
        return
    if value is None:
        profile.pop(key, None)
    else:
        profile[key] = value


@lru_cache(maxsize=65536)
def _as_time_if_date(value: str) -> str:
    parsed = parse_braze_time(value)
    return format_braze_time(parsed) if parsed is not None else value


def _resolve_times(value: object) -> object:
    """Nested ``{"$time": ...}`` becomes the stored time string."""
    if isinstance(value, dict):
        if set(value) == {"$time"}:
            return format_braze_time(parse_braze_time(value["$time"]))
        return {k: _resolve_times(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_times(v) for v in value]
    return value


def _deep_merge(base: dict, update: dict) -> dict:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _dedupe_tail(items: list, max_items: int) -> list:
    """Arrays are sets kept in insertion order; past the cap the oldest items go."""
    seen: dict = {}
    for item in items:
        seen.setdefault(repr(item), item)
    values = list(seen.values())
    return values[-max_items:] if len(values) > max_items else values


def _apply_array_ops(current: object, ops: dict, max_items: int) -> list:
    items = list(current) if isinstance(current, list) else []
    for value in ops.get("add", []):
        if value in items:
            items.remove(value)  # adding an existing element moves it to the end
        items.append(value)
    for value in ops.get("remove", []):
        items = [item for item in items if item != value]
    return _dedupe_tail(items, max_items)


def _matches(item: object, key: str, value: object) -> bool:
    return isinstance(item, dict) and item.get(key) == value


def _apply_object_array_ops(current: object, ops: dict) -> list:
    items = list(current) if isinstance(current, list) else []
    for obj in ops.get("$add", []):
        items.append(_resolve_times(obj))
    for spec in ops.get("$remove", []):
        key, value = spec["$identifier_key"], spec["$identifier_value"]
        items = [item for item in items if not _matches(item, key, value)]
    for spec in ops.get("$update", []):
        key, value = spec["$identifier_key"], spec["$identifier_value"]
        update = _resolve_times(spec["$new_object"])
        for i, item in enumerate(items):
            if _matches(item, key, value):
                items[i] = _deep_merge(item, update)
    return items


_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1
_PLAIN_NUMBERS = frozenset({int, float, bool})


def _apply_custom(attrs: dict, key: str, value: object, merge: bool, max_items: int) -> None:
    """Apply one custom attribute (its cost is ``braze.datapoints``')."""
    kind = type(value)
    if kind is int or kind is float or kind is bool:  # the common case, first
        attrs[key] = value
    elif value is None:
        attrs.pop(key, None)
    elif isinstance(value, str):
        attrs[key] = _as_time_if_date(value) if len(value) >= 8 else value
    elif isinstance(value, list):
        if any(isinstance(v, dict) for v in value):  # an array of objects
            attrs[key] = [_resolve_times(v) for v in value]
        else:
            attrs[key] = _dedupe_tail(value, max_items)
    elif isinstance(value, dict):
        keys = value.keys()
        if keys == {"inc"}:
            current = attrs.get(key)
            base = (
                current if isinstance(current, int | float) and not isinstance(current, bool) else 0
            )
            total = base + value["inc"]
            # JSON stores (and Braze keeps) 64-bit integers; past that the value is a float
            attrs[key] = total if _INT64_MIN <= total <= _UINT64_MAX else float(total)
        elif keys and keys <= {"add", "remove"}:
            attrs[key] = _apply_array_ops(attrs.get(key), value, max_items)
        elif keys and keys <= {"$add", "$remove", "$update"}:
            attrs[key] = _apply_object_array_ops(attrs.get(key), value)
        else:
            resolved = _resolve_times(value)
            current = attrs.get(key)
            attrs[key] = (
                _deep_merge(current, resolved) if merge and isinstance(current, dict) else resolved
            )
    else:
        attrs[key] = value


def apply_attributes(
    profile: dict,
    obj: dict,
    *,
    now: datetime,
    max_array_items: int = DEFAULT_MAX_ARRAY_ITEMS,
    points_by_key: dict[str, int] | None = None,
) -> int:
    """Apply a validated attributes object to ``profile``; return the data points it costs.

    ``points_by_key``, when given, is credited with each field's own data points (the
    sandbox's per-attribute counters), so callers need not re-derive Braze's rules."""
    merge = obj.get("_merge_objects") is True
    attrs = profile.setdefault("custom_attributes", {})
    points = 0
    for key, value in obj.items():
        if key in CONTROL_KEYS:
            continue
        if key in STANDARD_FIELDS:
            _set_standard(profile, key, value)
            spent = 0 if key in FREE_FIELDS else 1
        elif type(value) in _PLAIN_NUMBERS:  # the common case, without a call
            attrs[key] = value
            spent = 1
        else:
            # Costed before applying: $update counts what changes against the stored value.
            spent = attribute_data_points(key, value, attrs.get(key))
            _apply_custom(attrs, key, value, merge, max_array_items)
        points += spent
        if points_by_key is not None and spent:
            points_by_key[key] = points_by_key.get(key, 0) + spent
    profile["updated_at"] = _stamp(now)
    return points


@lru_cache(maxsize=16)
def _stamp(now: datetime) -> str:
    """``format_braze_time`` for a request's one ``now``, shared by all its objects."""
    return format_braze_time(now)


def _bump(summary: dict, name: str, when: str) -> None:
    entry = summary.get(name)
    if entry is None:
        summary[name] = {"first": when, "last": when, "count": 1}
        return
    entry["count"] += 1
    entry["first"] = min(entry["first"], when)
    entry["last"] = max(entry["last"], when)


def _event_time(obj: dict, now: datetime) -> str:
    when = parse_braze_time(obj["time"])
    return format_braze_time(min(when, now))  # a future time is clamped to now


def apply_event(profile: dict, event: dict, *, now: datetime) -> int:
    _bump(profile.setdefault("custom_events", {}), event["name"], _event_time(event, now))
    profile["updated_at"] = _stamp(now)
    return data_points("events", event)


def apply_purchase(profile: dict, purchase: dict, *, now: datetime) -> int:
    """Record a purchase; returns its data points (``braze.datapoints``)."""
    when = _event_time(purchase, now)
    quantity = purchase.get("quantity", 1)
    summary = profile.setdefault("purchases", {})
    for _ in range(quantity):
        _bump(summary, purchase["product_id"], when)
    profile["total_revenue"] = round(
        (profile.get("total_revenue") or 0.0) + purchase["price"] * quantity, 2
    )
    profile["updated_at"] = format_braze_time(now)
    return data_points("purchases", purchase)


def merge_profile_into(target: dict, source: dict) -> None:
    """Fold ``source`` into ``target`` as identify and merge do: fields copied only where
    absent, counters summed, first/last dates widened, aliases carried over."""
    for key, value in source.items():
        if key in ("braze_id", "external_id", "created_at", "updated_at", "random_bucket"):
            continue
        if key == "custom_attributes":
            attrs = target.setdefault("custom_attributes", {})
            for name, attr in value.items():
                attrs.setdefault(name, attr)
        elif key in ("custom_events", "purchases"):
            summary = target.setdefault(key, {})
            for name, entry in value.items():
                mine = summary.get(name)
                if mine is None:
                    summary[name] = dict(entry)
                else:
                    mine["count"] += entry["count"]
                    mine["first"] = min(mine["first"], entry["first"])
                    mine["last"] = max(mine["last"], entry["last"])
        elif key == "user_aliases":
            labels = {a["alias_label"] for a in target.get("user_aliases", [])}
            target.setdefault("user_aliases", []).extend(
                a for a in value if a["alias_label"] not in labels
            )
        elif key == "total_revenue":
            target["total_revenue"] = round(target.get("total_revenue", 0.0) + value, 2)
        elif target.get(key) is None:
            target[key] = copy.deepcopy(value)
    target["created_at"] = min(target["created_at"], source["created_at"])


def _summary_list(summary: dict) -> list[dict]:
    return [{"name": name, **entry} for name, entry in summary.items()]


def export_profile(profile: dict, fields_to_export: list[str] | None = None) -> dict:
    """The user object ``/users/export/ids`` returns; absent fields are left out."""
    wanted = EXPORT_FIELDS if not fields_to_export else set(fields_to_export)
    out: dict = {}
    for name in EXPORT_ORDER:
        if name not in wanted:
            continue
        if name == "custom_events":
            value = _summary_list(profile.get("custom_events", {}))
        elif name == "purchases":
            value = _summary_list(profile.get("purchases", {}))
        elif name == "created_at":
            value = format_export_time(parse_braze_time(profile["created_at"]))
        elif name == "custom_attributes":
            value = profile.get("custom_attributes") or None
        elif name in _EMPTY_LIST_FIELDS:
            value = profile.get(name, [])
        else:
            value = profile.get(name)
        if value is not None and value != [] or name in _EMPTY_LIST_FIELDS:
            out[name] = value
    return out
