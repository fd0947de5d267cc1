"""What an object costs in Braze data points: the one function the sandbox's counters, the
sync's run records and dedupe's savings all call, so the three figures cannot disagree.

Braze's rules (legacy data-point billing):

* every attribute *set* costs one, changed or not, ``null`` (removing it) included;
  subscription states, subscription groups and push tokens cost nothing, nor does ``bio``
  (Braze ignores it), nor the identifiers and control keys of the object;
* a whole array set at once costs one; ``add``/``remove`` cost one per value;
* a nested object costs one per key (leaf keys, recursively; ``{"$time": ...}`` is one
  value); an array of objects one per property of every object; ``$add`` likewise,
  ``$remove`` one per object removed, ``$update`` one per property that changes (all of
  them when the stored value is not known);
* an event costs one; a purchase one plus one per property, times its quantity (Braze
  counts a purchase of quantity N as N purchases).
"""

from __future__ import annotations

from headwater.braze.track import CONTROL_KEYS

__all__ = ["FREE_FIELDS", "attribute_data_points", "data_points"]

# Standard fields that cost no data point (subscription state, push tokens), and ``bio``,
# which Braze ignores.
FREE_FIELDS = frozenset(
    {"email_subscribe", "push_subscribe", "subscription_groups", "push_tokens", "bio"}
)
_NO_COST = FREE_FIELDS | CONTROL_KEYS
_SCALARS = (str, int, float, bool)


def data_points(kind: str, obj: dict) -> int:
    """Data points one ``/users/track`` object costs (``kind``: its array's name)."""
    if kind == "events":
        return 1
    if kind == "purchases":
        quantity = obj.get("quantity", 1)
        quantity = quantity if isinstance(quantity, int) and quantity > 0 else 1
        return quantity * (1 + len(obj.get("properties") or {}))
    points = 0
    for name, value in obj.items():
        if name in _NO_COST:
            continue
        points += 1 if isinstance(value, _SCALARS) else attribute_data_points(name, value)
    return points


def attribute_data_points(name: str, value: object, current: object = None) -> int:
    """Data points of setting attribute ``name`` to ``value``. ``current`` (the stored
    value, when known) makes ``$update`` count only the properties that change."""
    if name in _NO_COST:
        return 0
    if isinstance(value, dict):
        keys = value.keys()
        if keys == {"inc"}:
            return 1
        if keys and keys <= {"add", "remove"}:
            return len(value.get("add") or []) + len(value.get("remove") or [])
        if keys and keys <= {"$add", "$remove", "$update"}:
            return _object_array_points(value, current)
        return _leaves(value)
    if isinstance(value, list) and any(isinstance(item, dict) for item in value):
        return _leaves(value)
    return 1


def _leaves(value: object) -> int:
    """One per leaf key of a nested value; an empty object or array is still one set."""
    if isinstance(value, dict):
        if value.keys() == {"$time"}:
            return 1
        return sum(_leaves(v) for v in value.values()) or 1
    if isinstance(value, list):
        return sum(_leaves(v) for v in value) or 1
    return 1


def _object_array_points(ops: dict, current: object) -> int:
    points = sum(_leaves(obj) for obj in ops.get("$add") or [])
    points += len(ops.get("$remove") or [])
    stored = current if isinstance(current, list) else None
    for spec in ops.get("$update") or []:
        new = spec.get("$new_object") if isinstance(spec, dict) else None
        if not isinstance(new, dict):
            continue
        if stored is None:
            points += len(new)
            continue
        key, wanted = spec.get("$identifier_key"), spec.get("$identifier_value")
        for item in stored:
            if isinstance(item, dict) and item.get(key) == wanted:
                points += sum(1 for k, v in new.items() if item.get(k) != v)
    return points
