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
dropped here, keeping each user's last line: one row per (segment, braze_id).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

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
    table: pa.Table  # one row per member: a user's last line when Braze repeated them
    lines: int  # lines read and kept, duplicates included
    duplicates: int
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
        self._last_line: dict[str, int] = {}  # braze_id -> its latest line
        self._superseded: list[int] = []  # lines a later line of the same user replaces
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
        """Read one NDJSON file into a table of its own (columns built directly: the hot
        loop of an export, ~1 us per value)."""
        columns: dict[str, list] = {}
        ordinals: list[int] = []
        n = 0  # rows kept from this file
        field_name, attribute_name = self._fields.get, self._attributes.get
        for number, line in enumerate(data.split(b"\n"), 1):
            if not line or line.isspace():
                continue
            try:
                user = orjson.loads(line)
            except orjson.JSONDecodeError:
                user = _slow_json(line)
                if user is None:
                    self._reject(
                        f"{label}:{number}", None, "not a JSON object (damaged or truncated line)"
                    )
                    continue
            if type(user) is not dict:
                self._reject(
                    f"{label}:{number}", None,
                    f"a user line must be a JSON object, not {type(user).__name__}",
                )  # fmt: skip
                continue
            key = user.get(KEY_FIELD)
            if type(key) is not str or not key:
                self._reject(
                    f"{label}:{number}", KEY_FIELD,
                    "braze_id is missing or not a string: the member cannot be keyed",
                )  # fmt: skip
                continue
            # Each key of a line maps to its own column (names are claimed once), so each
            # column gets at most one value per row: pad it to row n, then append.
            for name, value in user.items():
                if name == "custom_attributes" and type(value) is dict:
                    overflow = None
                    for attr, attr_value in value.items():
                        column = attribute_name(attr) or self._attribute(attr)
                        if column is None:
                            overflow = overflow or {}
                            overflow[attr] = attr_value
                            continue
                        values = columns.get(column)
                        if values is None:
                            values = columns[column] = [None] * n
                        elif len(values) < n:
                            values.extend([None] * (n - len(values)))
                        values.append(attr_value)
                    if overflow is None:
                        continue
                    name, value = OVERFLOW_COLUMN, overflow
                column = (
                    name if name == OVERFLOW_COLUMN else (field_name(name) or self._field(name))
                )
                values = columns.get(column)
                if values is None:
                    values = columns[column] = [None] * n
                elif len(values) < n:
                    values.extend([None] * (n - len(values)))
                values.append(value)
            earlier = self._last_line.get(key)
            if earlier is not None:
                self._superseded.append(earlier)
            self._last_line[key] = self.lines
            ordinals.append(self.lines)
            n += 1
            self.lines += 1
        if not n:
            return
        arrays, names = [pa.array(ordinals, pa.int64())], [ORDINAL_COLUMN]
        for column, values in columns.items():
            if len(values) < n:
                values.extend([None] * (n - len(values)))
            arrays.append(to_array(values))
            names.append(column)
        self._tables.append(pa.Table.from_arrays(arrays, names=names))

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
                if name in t.column_names:  # Arrays, not ChunkedArrays: those are slow here
                    parts.extend(_cast(chunk, kind) for chunk in t.column(name).chunks)
                else:
                    parts.append(pa.nulls(t.num_rows, kind))
            out[name] = pa.chunked_array(parts, type=kind) if parts else pa.chunked_array([], kind)
        segment = pa.array([self.segment_id] * total, pa.string())
        table = pa.table({SEGMENT_COLUMN: segment, **out})
        self._tables = []
        if self._superseded:  # Braze repeated users: keep each one's last line
            dropped = pa.array(self._superseded, pa.int64())
            table = table.filter(pc.invert(pc.is_in(table.column(ORDINAL_COLUMN), dropped)))
        duplicates = len(self._superseded)
        self._last_line, self._superseded = {}, []
        return ParsedMembers(
            table.drop_columns([ORDINAL_COLUMN]), self.lines, duplicates, self.rejected, self.errors
        )


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
