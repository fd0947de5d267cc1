"""Model rows -> Braze objects, per a sync's identifier and field mapping.

Every object is checked with the same contract the sandbox and Braze apply
(``headwater.braze.track``) before it is sent, so a bad row is reported with its key and
field instead of failing the request it would have travelled in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from decimal import Decimal

from headwater.braze.identifiers import ObjectError
from headwater.braze.timeparse import format_braze_time
from headwater.braze.track import (
    STANDARD_FIELDS,
    validate_attributes_object,
    validate_event_object,
    validate_purchase_object,
)
from headwater.braze.values import check_key
from headwater.config import SyncConfig
from headwater.errors import RowError


def to_braze_value(value: object) -> object:
    """Python values from Arrow -> JSON values Braze accepts (times as ISO strings)."""
    if isinstance(value, datetime):
        return format_braze_time(value if value.tzinfo else value.replace(tzinfo=UTC))
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list | tuple):
        return [to_braze_value(v) for v in value]
    if isinstance(value, dict):
        return {k: to_braze_value(v) for k, v in value.items()}
    return value


def field_problem(field: str) -> str | None:
    """Why ``field`` can never be a Braze attribute a sync writes (else None)."""
    if field in STANDARD_FIELDS:
        return None
    try:
        check_key(field, "attribute")
    except ObjectError as exc:
        return exc.type
    return None


def mapping_problems(sync: SyncConfig) -> list[str]:
    """Braze field names that can never be valid targets (a config-time check)."""
    return [f"mapping.{f}: {p}" for f in sync.mapping if (p := field_problem(f)) is not None]


def check_sync_mappings(raw: dict, report: Callable[[tuple, str], None]) -> None:
    """Every sync's mapped Braze fields, for ``load_project(checks=...)``, at their lines."""
    syncs = raw.get("syncs")
    for name, sync in syncs.items() if isinstance(syncs, dict) else ():
        mapping = sync.get("mapping") if isinstance(sync, dict) else None
        for field in mapping if isinstance(mapping, dict) else ():
            problem = field_problem(field) if isinstance(field, str) else None
            if problem is not None:
                report(("syncs", name, "mapping", field), problem)


IDENTIFIER_KINDS = ("external_id", "user_alias", "braze_id", "email", "phone")


def identifier_kind(sync: SyncConfig) -> str:
    """``sync.identifier.kind`` without pydantic's per-call field lookup (it showed up at
    8 % of a first sync's profile, computed for every row)."""
    ident = sync.identifier
    return next(k for k in IDENTIFIER_KINDS if getattr(ident, k) is not None)


def identifier_payload(sync: SyncConfig, row: dict) -> dict:
    """The identifier part of an object; a missing identifier is a RowError."""
    ident = sync.identifier
    alias = ident.user_alias
    column = alias.name if alias is not None else getattr(ident, identifier_kind(sync))
    value = row.get(column)
    if value is None or value == "":
        raise RowError("identifier is missing", field=column)
    value = str(value) if not isinstance(value, str) else value
    if alias is not None:
        payload: dict = {"user_alias": {"alias_name": value, "alias_label": alias.label}}
    else:
        payload = {identifier_kind(sync): value}
    if sync.mode == "update":
        payload["_update_existing_only"] = True
    elif ident.user_alias is not None:
        payload["_update_existing_only"] = False  # aliases are only created when asked
    return payload


def _field_of_error(error: ObjectError, fields: Iterable[str]) -> str | None:
    for name in fields:
        if f"'{name}'" in error.type:
            return name
    return None


def attributes_object(sync: SyncConfig, row: dict, fields: Iterable[str] | None = None) -> dict:
    """An attributes object carrying ``fields`` (Braze names; all mapped fields if None)."""
    obj = identifier_payload(sync, row)
    for field in sync.mapping if fields is None else fields:
        obj[field] = to_braze_value(row.get(sync.mapping[field]))
    return _checked(validate_attributes_object, obj, sync)


def unset_object(sync: SyncConfig, row: dict) -> dict:
    """Null every mapped attribute: Braze removes an attribute set to null."""
    obj = identifier_payload(sync, row)
    obj.pop("_update_existing_only", None)
    obj["_update_existing_only"] = True
    obj.update(dict.fromkeys(sync.mapping))
    return _checked(validate_attributes_object, obj, sync)


def _add_occurrence(obj: dict, spec, row: dict, now: datetime) -> None:
    """When it happened (the row's time column, else now) and its non-empty properties."""
    when = row.get(spec.time) if spec.time else None
    obj["time"] = to_braze_value(when) if when is not None else format_braze_time(now)
    props = {k: to_braze_value(row.get(col)) for k, col in spec.properties.items()}
    props = {k: v for k, v in props.items() if v is not None}
    if props:
        obj["properties"] = props


def event_object(sync: SyncConfig, row: dict, now: datetime) -> dict:
    spec = sync.event
    assert spec is not None
    obj = identifier_payload(sync, row)
    obj["name"] = spec.name if spec.name is not None else row.get(spec.name_column)
    _add_occurrence(obj, spec, row, now)
    return _checked(validate_event_object, obj, sync)


def purchase_object(sync: SyncConfig, row: dict, now: datetime) -> dict:
    spec = sync.purchase
    assert spec is not None
    obj = identifier_payload(sync, row)
    obj["product_id"] = row.get(spec.product_id)
    obj["price"] = to_braze_value(row.get(spec.price))
    obj["currency"] = spec.currency if spec.currency else row.get(spec.currency_column)
    if spec.quantity and row.get(spec.quantity) is not None:
        obj["quantity"] = row.get(spec.quantity)
    _add_occurrence(obj, spec, row, now)
    return _checked(validate_purchase_object, obj, sync)


def _checked(validator, obj: dict, sync: SyncConfig) -> dict:
    try:
        cleaned = validator(obj)
    except ObjectError as exc:
        field = _field_of_error(
            exc, [*sync.mapping, "name", "time", "product_id", "currency", "price", "quantity"]
        )
        column = sync.mapping.get(field, field) if field else None
        raise RowError(exc.type, field=column, value=obj.get(field) if field else None) from None
    if cleaned is not obj:
        dropped = sorted(set(obj) - set(cleaned))
        raise RowError(
            f"Braze would drop invalid nested values of {', '.join(dropped)}",
            field=dropped[0],
            value=obj[dropped[0]],
        )
    return cleaned
