"""From a partner's payload to Braze objects: the shared result type, Liquid rendering for
the generic preset, and the dedupe key that makes a re-posted event count once.

Liquid is what Braze itself uses, so users write the same ``{{ user.email }}`` they know.
A template that is exactly one ``{{ expression }}`` keeps the value's JSON type (numbers
stay numbers, objects stay objects); anything else renders to a string, and an empty string
drops the field, so optional payload fields need no ``if`` blocks.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson
from liquid.exceptions import LiquidError

from headwater.config.streams import GenericMapping
from headwater.config.templates import compile_template
from headwater.errors import HeadwaterError, RowError
from headwater.streams.text import text_of

_FALSY = {"", "false", "0", "nil", "null", "none"}


@dataclass(slots=True)
class MappedObject:
    kind: str  # attributes | events | purchases
    obj: dict
    partner_id: str | None = None  # the partner's own id for this event, if it has one


@dataclass
class Mapped:
    """What one payload becomes; ``skipped`` says why a payload produced nothing on purpose
    (an event type or reward state the stream does not forward)."""

    objects: list[MappedObject] = field(default_factory=list)
    skipped: str | None = None

    def add(self, kind: str, obj: dict, partner_id: str | None = None) -> None:
        self.objects.append(MappedObject(kind, obj, partner_id))


class TooMuchWork(HeadwaterError):
    """A payload asks for more than the stream's bounds (``max_items``, ``max_objects``):
    refused before the work is done, so one body cannot keep the gateway busy for minutes."""


def bounded(items: list, max_items: int, where: str) -> list:
    """``items`` (a payload's batch), or TooMuchWork when there are more than ``max_items``."""
    if len(items) > max_items:
        raise TooMuchWork(
            f"{where} has {len(items)} items; this stream takes at most {max_items} per "
            "payload (its max_items)"
        )
    return items


def render_value(template: Any, scope: dict) -> Any:
    """Render one mapping value: strings are templates, dicts and lists recurse."""
    if isinstance(template, dict):
        out = {}
        for key, inner in template.items():
            value = render_value(inner, scope)
            if value is not None and value != "":
                out[key] = value
        return out
    if isinstance(template, list):
        return [v for v in (render_value(t, scope) for t in template) if v is not None]
    if not isinstance(template, str) or "{" not in template:
        return template
    try:
        typed, compiled = compile_template(template)
        text = compiled.render(**scope)
    except LiquidError as exc:
        raise RowError(f"template {template!r} failed: {exc}") from None
    if not typed:
        return text
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # an expression Liquid rendered as plain text after all
        return text


def lookup(payload: Any, path: str) -> Any:
    """A dotted path (``data.person.email``) into nested dicts; None when absent."""
    value = payload
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def map_generic(payload: Any, mapping: GenericMapping, max_items: int) -> Mapped:
    items: list[Any]
    if mapping.each:
        found = lookup(payload, mapping.each)
        if not isinstance(found, list):
            raise RowError(f"'{mapping.each}' is not an array in this payload", field=mapping.each)
        items = bounded(found, max_items, f"'{mapping.each}'")
    else:
        items = [None]
    result = Mapped()
    for item in items:
        scope = {"payload": payload, "item": item}
        if isinstance(payload, dict):
            scope = {**payload, **scope}
        if mapping.when is not None:
            verdict = render_value(mapping.when, scope)
            if verdict is None or str(verdict).strip().lower() in _FALSY or verdict is False:
                continue
        partner_id = None
        if mapping.event_id:
            rendered = render_value(mapping.event_id, scope)
            partner_id = None if rendered in (None, "") else text_of(rendered, "event_id")
        for kind in ("attributes", "events", "purchases"):
            for template in getattr(mapping, kind):
                obj = render_value(template, scope)
                if obj:
                    result.add(kind, _ids_as_text(kind, obj), partner_id)
    if not result.objects:
        result.skipped = "the mapping produced no objects for this payload"
    return result


_TEXT_FIELDS = {
    "attributes": ("external_id", "braze_id"),
    "events": ("external_id", "braze_id", "name"),
    "purchases": ("external_id", "braze_id", "product_id"),
}


def _ids_as_text(kind: str, obj: dict) -> dict:
    """Numeric ids and names as their digits, as the partner presets do (``{{ item.id }}``
    keeps a number's type); anything else that is not text is Braze's check to refuse."""
    for key in _TEXT_FIELDS[kind]:
        value = obj.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            obj[key] = text_of(value, key)
    return obj


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def dedupe_key(stream: str, mapped: MappedObject, position: int) -> bytes | None:
    """Events and purchases are keyed by the partner's event id when it has one, else by
    their content; attribute updates are never dropped here (dedupe.py handles them)."""
    if mapped.kind == "attributes":
        return None
    if mapped.partner_id:
        basis = f"{stream}\x00id\x00{mapped.partner_id}\x00{mapped.kind}\x00{position}"
    else:
        basis = (
            f"{stream}\x00c\x00" + orjson.dumps(mapped.obj, option=orjson.OPT_SORT_KEYS).decode()
        )
    return _digest(basis)
