"""Braze user objects -> one Arrow table of a segment's members.

Every top-level field becomes a column, and so does every custom attribute (flattened out
of ``custom_attributes``, so ``where loyalty_tier = 'gold'`` just works). Lists and objects
(``user_aliases``, ``custom_events``, nested attributes) are kept as JSON text.

A name that would collide with a column already taken (Headwater's own ``segment_id``, a
standard field, case-insensitively since SQL names are) gets the ``_braze_`` prefix: a
custom attribute called ``email`` lands as ``_braze_email`` next to the profile's
``email``. A column's type is what its values agree on (boolean, integer, double, text);
values of mixed kinds land as text. Past ``MAX_COLUMNS`` columns, further custom
attributes go to one JSON column, ``_braze_custom_attributes_overflow``.

A line that is not a JSON object, or has no ``braze_id``, is a row error naming the file
and line; the rest of the file lands. Duplicates (Braze's files may repeat a user) are
resolved when landing, keeping the user's last line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from headwater.braze.profile import EXPORT_ORDER
from headwater.braze.segment_export import KEY_FIELD
from headwater.errors import RowError

COLLISION_PREFIX = "_braze_"
SEGMENT_COLUMN = "segment_id"
ORDINAL_COLUMN = "_headwater_line"  # file order, for keeping a duplicate's last line
HEADWATER_COLUMNS = (SEGMENT_COLUMN, ORDINAL_COLUMN)
OVERFLOW_COLUMN = COLLISION_PREFIX + "custom_attributes_overflow"
MAX_COLUMNS = 1000
MAX_ERRORS_KEPT = 10_000  # per segment; more are counted, not stored
_FIRST = (SEGMENT_COLUMN, KEY_FIELD, "external_id")


@dataclass
class ParsedMembers:
    table: pa.Table  # one row per line read (duplicates included), ORDINAL_COLUMN set
    lines: int
    rejected: int
    errors: list[RowError] = field(default_factory=list)


class MembersParser:
    """Feed it the export's files (``add_file``), then take the table (``finish``)."""

    def __init__(self, segment_id: str) -> None:
        self.segment_id = segment_id
        self._taken: dict[str, str] = {c.lower(): c for c in HEADWATER_COLUMNS}
        self._taken[OVERFLOW_COLUMN.lower()] = OVERFLOW_COLUMN
        for name in EXPORT_ORDER:  # standard fields keep their names even if seen later
            self._taken.setdefault(name.lower(), name)
        self._fields: dict[str, str] = {}
        self._attributes: dict[str, str] = {}
        self._order: list[str] = []
        self._tables: list[pa.Table] = []
        self.lines = 0
        self.rejected = 0
        self.errors: list[RowError] = []

    # -- names ----------------------------------------------------------------------------

    def _claim(self, wanted: str) -> str:
        name = wanted if wanted.lower() not in self._taken else COLLISION_PREFIX + wanted
        n = 2
        while name.lower() in self._taken:
            name = f"{COLLISION_PREFIX}{wanted}_{n}"
            n += 1
        self._taken[name.lower()] = wanted
        return name

    def _field(self, key: str) -> str:
        name = self._fields.get(key)
        if name is None:
            standard = key in EXPORT_ORDER and key not in HEADWATER_COLUMNS
            name = key if standard else self._claim(key)  # standard names are reserved
            self._fields[key] = name
            self._order.append(name)
        return name

    def _attribute(self, key: str) -> str | None:
        name = self._attributes.get(key)
        if name is None:
            if len(self._order) >= MAX_COLUMNS:
                return None
            name = self._claim(key)
            self._attributes[key] = name
            self._order.append(name)
        return name

    # -- lines ----------------------------------------------------------------------------

    def _reject(self, where: str, field_name: str | None, reason: str) -> None:
        self.rejected += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(RowError(reason, row=where, field=field_name))

    def add_file(self, label: str, data: bytes) -> None:
        rows: list[dict] = []
        for number, line in enumerate(data.split(b"\n"), 1):
            if not line.strip():
                continue
            where = f"{label}:{number}"
            try:
                user = orjson.loads(line)
            except orjson.JSONDecodeError:
                user = _slow_json(line)
                if user is None:
                    self._reject(where, None, "not a JSON object (damaged or truncated line)")
                    continue
            if not isinstance(user, dict):
                self._reject(
                    where, None, f"a user line must be a JSON object, not {type(user).__name__}"
                )
                continue
            key = user.get(KEY_FIELD)
            if not isinstance(key, str) or not key:
                self._reject(
                    where,
                    KEY_FIELD,
                    "braze_id is missing or not a string: the member cannot be keyed",
                )
                continue
            row: dict[str, Any] = {ORDINAL_COLUMN: self.lines}
            for name, value in user.items():
                if name == "custom_attributes" and isinstance(value, dict):
                    overflow = None
                    for attr, attr_value in value.items():
                        column = self._attributes.get(attr) or self._attribute(attr)
                        if column is None:
                            overflow = overflow or {}
                            overflow[attr] = attr_value
                        else:
                            row[column] = attr_value
                    if overflow:
                        row[OVERFLOW_COLUMN] = overflow
                else:
                    row[self._fields.get(name) or self._field(name)] = value
            rows.append(row)
            self.lines += 1
        if rows:
            self._tables.append(self._to_table(rows))

    def _to_table(self, rows: list[dict]) -> pa.Table:
        names: dict[str, None] = {}
        for row in rows:
            names.update(dict.fromkeys(row))
        arrays, fields = [], []
        for name in names:
            arrays.append(to_array([row.get(name) for row in rows]))
            fields.append(name)
        return pa.Table.from_arrays(arrays, names=fields)

    def finish(self) -> ParsedMembers:
        """The members read, in one table (columns in a stable order, types unified)."""
        order = [c for c in _FIRST if c in self._order or c in (SEGMENT_COLUMN, KEY_FIELD)]
        order += [c for c in self._order if c not in order]
        if OVERFLOW_COLUMN in {n for t in self._tables for n in t.column_names}:
            order.append(OVERFLOW_COLUMN)
        types = _unified_types(self._tables)
        types.setdefault(KEY_FIELD, pa.string())
        types.setdefault(ORDINAL_COLUMN, pa.int64())
        columns = [c for c in order if c != SEGMENT_COLUMN] + [ORDINAL_COLUMN]
        total = sum(t.num_rows for t in self._tables)
        out = {}
        for name in columns:
            kind = types.get(name, pa.string())
            parts = []
            for t in self._tables:
                if name in t.column_names:
                    parts.append(_cast(t.column(name), kind))
                else:
                    parts.append(pa.nulls(t.num_rows, kind))
            out[name] = pa.chunked_array(parts, type=kind) if parts else pa.chunked_array([], kind)
        segment = (
            pa.array([self.segment_id] * total, pa.string()) if total else pa.array([], pa.string())
        )
        table = pa.table({SEGMENT_COLUMN: segment, **out})
        self._tables = []
        return ParsedMembers(table, self.lines, self.rejected, self.errors)


def _slow_json(line: bytes) -> object | None:
    """orjson refuses integers past 64 bits and very deep nesting; the standard library
    reads both (its recursion limit caps depth)."""
    try:
        return json.loads(line)
    except (ValueError, RecursionError):
        return None


_NONE = type(None)


def to_array(values: list) -> pa.Array:
    """A column's values as the narrowest Arrow type they agree on; text when they do not
    (lists and objects as JSON)."""
    kinds = set(map(type, values))
    kinds.discard(_NONE)
    if kinds == {str} or not kinds:
        return pa.array(values, pa.string())
    if kinds == {bool}:
        return pa.array(values, pa.bool_())
    if kinds <= {int, float}:
        try:
            if kinds == {int}:
                return pa.array(values, pa.int64())
            return pa.array(values, pa.float64())
        except (OverflowError, pa.ArrowInvalid):
            pass  # integers past 64 bits: text below
    return pa.array([_text(v) for v in values], pa.string())


def _text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # integers past 64 bits, possibly nested
        return json.dumps(value, separators=(",", ":"))


_WIDER = {pa.int64(): 0, pa.float64(): 1}


def _unified_types(tables: list[pa.Table]) -> dict[str, pa.DataType]:
    seen: dict[str, set[pa.DataType]] = {}
    for t in tables:
        for f in t.schema:
            if not pa.types.is_null(f.type):
                seen.setdefault(f.name, set()).add(f.type)
    out = {}
    for name, kinds in seen.items():
        if len(kinds) == 1:
            out[name] = next(iter(kinds))
        elif kinds <= set(_WIDER):
            out[name] = pa.float64()
        else:
            out[name] = pa.string()
    return out


def _cast(column: pa.Array, kind: pa.DataType) -> pa.Array:
    if column.type == kind:
        return column
    if pa.types.is_string(kind) and pa.types.is_boolean(column.type):
        return pc.if_else(column, "true", "false")
    return column.cast(kind)
