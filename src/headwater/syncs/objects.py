"""Diff batches -> Braze attribute objects, a batch at a time.

A first sync builds an object for every row of the model, so the per-row Python is what
users wait for. Everything that does not depend on the row is worked out once per sync
here: the identifier key and flag, the fields, which of Braze's field checks apply, and
the data points an object with a given set of keys costs. The engine formats times
(``time_sql``) the way ``format_braze_time`` writes them; whole batches are vetted at once
with Arrow (string lengths, non-finite floats). What is left per row is putting values
in a dict.

A row this path cannot vouch for (a removal, a value that fails a check, a batch with a
string over the limit, a nested value) is handed back to the engine's row-at-a-time path
(``syncs.engine._plan_row``), which builds the same object or raises the same RowError
as it always has. ``tests/syncs/test_objects.py`` holds the two paths to each other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from dataclasses import field as default
from itertools import repeat

import pyarrow as pa
import pyarrow.compute as pc

from headwater.braze.client import TrackItem
from headwater.braze.datapoints import data_points
from headwater.braze.identifiers import ObjectError
from headwater.braze.limits import MAX_EXTERNAL_ID_BYTES, MAX_STRING_LENGTH
from headwater.braze.track import CONTROL_KEYS, FLAGS, STANDARD_FIELDS
from headwater.braze.values import check_email, plain_emails
from headwater.config import SyncConfig
from headwater.engines import quote_ident
from headwater.syncs.diff import ADDED, BITS_PER_MASK, CHANGED, REMOVED, mask_names
from headwater.syncs.mapping import identifier_kind
from headwater.syncs.snapshot import KEY

# Model column types whose values reach Python as plain JSON scalars ("time" once the
# engine has formatted it).
FLAT_TYPES = frozenset({"string", "integer", "float", "boolean", "time"})
UPDATE_FLAG = "_update_existing_only"


def time_sql(dialect: str, ref: str) -> str:
    """A TIMESTAMPTZ column as Braze's time string, exactly as ``format_braze_time`` writes
    it (UTC, four-digit year, milliseconds truncated): ``2024-05-02T10:00:00.000Z``."""
    if dialect == "postgres":
        return f"to_char({ref} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
    return f"strftime({ref} AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%gZ')"


def time_columns(sync: SyncConfig, types: dict[str, str]) -> set[str]:
    """The diff columns the engine formats as Braze times: declared ``time``, and not the
    identifier (an identifier is sent as its text, as before)."""
    ident = set(sync.identifier.columns)
    return {c for c in sync.columns if types.get(c) == "time" and c not in ident}


class AttributeBuilder:
    """Builds the attribute objects of one sync's diff batches (see the module doc)."""

    def __init__(self, sync: SyncConfig, columns: Sequence[str], types: dict[str, str]):
        self.sync = sync
        self.columns = list(columns)
        self.masks = mask_names(len(self.columns))
        self.ident_column = sync.identifier.columns[0]
        kind = identifier_kind(sync)
        self.alias_label = sync.identifier.user_alias.label if kind == "user_alias" else None
        self.ident_key = kind
        self.flag: bool | None = None
        if sync.mode == "update":
            self.flag = True
        elif self.alias_label is not None:
            self.flag = False
        self.fields = list(sync.mapping.items())  # (Braze field, model column)
        self.enabled = sync.type == "attributes" and self._flat(types)
        # Braze's checks of standard fields, with the column each reads the value from.
        columns_of = {kind: self.ident_column, **sync.mapping}
        self.checks: list[tuple[str, Callable[[object], None], str]] = [
            (k, STANDARD_FIELDS[k], c) for k, c in columns_of.items() if k in STANDARD_FIELDS
        ]
        self.types = types
        self.string_fields = [
            column
            for field, column in self.fields
            if field not in STANDARD_FIELDS and types.get(column) == "string"
        ]
        self.float_columns = [
            c for c in dict.fromkeys(sync.mapping.values()) if types[c] == "float"
        ]
        self._all_bits = tuple(
            sum(
                1 << (i % BITS_PER_MASK)
                for i in range(len(self.columns))
                if i // BITS_PER_MASK == w
            )
            for w in range(len(self.masks))
        )
        self._by_mask: dict[tuple, tuple[bool, list[tuple[str, int]]]] = {}
        self._costs: dict[tuple, int] = {}

    def _flat(self, types: dict[str, str]) -> bool:
        for field, column in self.sync.mapping.items():
            if types.get(column) not in FLAT_TYPES:
                return False  # nested values: Braze's nested rules and costs, row by row
            if field in CONTROL_KEYS or field in FLAGS or field == self.ident_key:
                return False
            if field not in STANDARD_FIELDS and (
                not field or len(field) > MAX_STRING_LENGTH or field[0] == "$"
            ):
                return False  # a bad name: the row path raises Braze's message
        if self.alias_label == "":
            return False  # the row path raises Braze's message for an empty label
        return types.get(self.ident_column) in FLAT_TYPES

    def _row_path(self, batch: pa.RecordBatch) -> list[bool] | None:
        """Which rows of ``batch`` must take the row path, found a column at a time: a
        custom string over Braze's limit, a NaN or infinity (sent as null, yet counted as
        a value). None when no row must."""
        flagged = None
        for column in self.string_fields:
            values = batch.column(column)
            if values.null_count < len(values):
                over = pc.greater(pc.utf8_length(values), MAX_STRING_LENGTH)
                flagged = over if flagged is None else pc.or_kleene(flagged, over)
        for column in self.float_columns:
            values = batch.column(column)
            if values.null_count < len(values):
                odd = pc.invert(pc.is_finite(values))
                flagged = odd if flagged is None else pc.or_kleene(flagged, odd)
        if flagged is None:
            return None
        flagged = pc.fill_null(flagged, False)
        return flagged.to_pylist() if pc.any(flagged).as_py() else None

    def _send_plan(self, masks: tuple) -> tuple[bool, list[tuple[str, int]]]:
        """For a row's mask words: whether it is sent whole (identifier changed) and the
        (field, column index) pairs whose bit is set, in mapping order."""
        plan = self._by_mask.get(masks)
        if plan is None:
            flagged = {
                column
                for i, column in enumerate(self.columns)
                if (masks[i // BITS_PER_MASK] or 0) >> (i % BITS_PER_MASK) & 1
            }
            index = {c: i for i, c in enumerate(self.columns)}
            whole = self.ident_column in flagged
            fields = [(f, index[c]) for f, c in self.fields if whole or c in flagged]
            plan = self._by_mask[masks] = (whole, fields)
        return plan

    def _plain(self, check: Callable[[object], None], column: str, batch: pa.RecordBatch) -> bool:
        # A batch read from PostgreSQL types an all-NULL column as null, not string (no
        # address to check, and Arrow's string kernels refuse it).
        return (
            check is check_email
            and self.types.get(column) == "string"
            and not pa.types.is_null(batch.column(column).type)
        )

    def _cost(self, obj: dict) -> int:
        keys = tuple(obj)
        cost = self._costs.get(keys)
        if cost is None:  # a flat object's cost depends only on its keys
            cost = self._costs[keys] = data_points("attributes", obj)
        return cost

    def plan(self, batch: pa.RecordBatch, kinds: list[str], values: list[list]) -> BatchPlan:
        """What becomes of each row of ``batch``. ``kinds`` are as the engine reads them
        (``unchanged`` already ``changed``); ``values`` holds each diff column as a list."""
        plan = BatchPlan()
        if not self.enabled:
            plan.row_path = list(range(len(kinds)))
            return plan
        row_path = self._row_path(batch)
        keys = batch.column(KEY).to_pylist()
        idents = values[self.columns.index(self.ident_column)]
        insert_only = self.sync.mode == "insert"
        ident_key, flag, label = self.ident_key, self.flag, self.alias_label
        checks = [  # addresses plain enough for Arrow to pass need no check per row
            (
                field,
                check,
                plain_emails(batch.column(column)) if self._plain(check, column, batch) else None,
            )
            for field, check, column in self.checks
        ]
        everything = [(f, values[c]) for f, c in self._send_plan(self._all_bits)[1]]
        if label is None and kinds.count(ADDED) == len(kinds):
            self._plan_added(plan, batch, keys, idents, everything, checks, row_path)
            return plan
        masks = list(zip(*(batch.column(m).to_pylist() for m in self.masks), strict=True))
        external_id = ident_key == "external_id"
        items, costs, cost_of = plan.items, plan.costs, self._cost
        to_row_path, commit_only = plan.row_path, plan.commit_only
        for i, kind in enumerate(kinds):
            ident = idents[i]
            if (
                kind == REMOVED
                or ident is None
                or ident == ""
                or (insert_only and kind == CHANGED)
                or (row_path is not None and row_path[i])
            ):
                to_row_path.append(i)
                continue
            if type(ident) is not str:
                ident = str(ident)
            if external_id and not 0 < len(ident) * 4 <= MAX_EXTERNAL_ID_BYTES:
                to_row_path.append(i)  # maybe too long: the row path measures it, says so
                continue
            if label is not None:
                obj: dict = {"user_alias": {"alias_name": ident, "alias_label": label}}
            else:
                obj = {ident_key: ident}
            if flag is not None:
                obj[UPDATE_FLAG] = flag
            if kind == ADDED:
                # A new user gets every field that has a value: nothing to unset yet.
                for field, column in everything:
                    value = column[i]
                    if value is not None:
                        obj[field] = value
            else:
                whole, fields = self._send_plan(masks[i])
                if whole:
                    for field, c in fields:
                        if values[c][i] is not None:
                            obj[field] = values[c][i]
                elif not fields:
                    commit_only.append(i)
                    continue
                else:
                    for field, c in fields:
                        obj[field] = values[c][i]
            try:
                for field, check, plain in checks:
                    if field in obj and (plain is None or not plain[i]):
                        check(obj[field])
            except ObjectError:
                to_row_path.append(i)  # the row path raises the RowError naming the field
                continue
            items.append(TrackItem("attributes", obj, keys[i]))
            costs.append(cost_of(obj))
        return plan

    def _plan_added(
        self,
        plan: BatchPlan,
        batch: pa.RecordBatch,
        keys: list,
        idents: list,
        everything: list[tuple[str, list]],
        checks: list[tuple[str, Callable[[object], None], list[bool] | None]],
        row_path: list[bool] | None,
    ) -> None:
        """``plan`` for a batch of new users only (a first sync), built a batch at a time:
        every object is zipped from its row in one go; the few rows that need more (a
        null to leave out -- nothing to unset yet --, a field to check, an identifier the
        row path must judge) are found first and dealt with one by one."""
        flag, ident_key = self.flag, self.ident_key
        names = (ident_key, *(() if flag is None else (UPDATE_FLAG,)), *(f for f, _ in everything))
        columns = [column for _, column in everything]
        if flag is not None:
            columns.insert(0, [flag] * len(keys))
        if any(type(v) is not str for v in idents):
            idents = [v if v is None or type(v) is str else str(v) for v in idents]
        limit = MAX_EXTERNAL_ID_BYTES // 4 if ident_key == "external_id" else None
        skipped = {
            i
            for i, ident in enumerate(idents)
            if not ident or (limit is not None and len(ident) > limit)  # maybe too long:
        }  # the row path measures it and says so
        if row_path is not None:
            skipped.update(i for i, flagged in enumerate(row_path) if flagged)
        objs = list(map(dict, map(zip, repeat(names), zip(idents, *columns, strict=True))))
        costs = [self._cost(objs[0]) if objs else 0] * len(objs)
        holes = None  # per row: whether some value is null
        for array in self._sent_arrays(batch):
            if array.null_count:
                nulls = pc.is_null(array)
                holes = nulls if holes is None else pc.or_(holes, nulls)
        if holes is not None:
            for i in pc.indices_nonzero(holes).to_pylist():
                objs[i] = obj = {k: v for k, v in objs[i].items() if v is not None}
                costs[i] = self._cost(obj)
        for field, check, plain in checks:
            for i in range(len(objs)) if plain is None else _falses(plain):
                if i not in skipped and field in objs[i]:
                    try:
                        check(objs[i][field])
                    except ObjectError:
                        skipped.add(i)  # the row path raises the RowError naming the field
        if skipped:
            plan.row_path.extend(sorted(skipped))
            kept = [i for i in range(len(objs)) if i not in skipped]
            objs, keys, costs = (
                [objs[i] for i in kept],
                [keys[i] for i in kept],
                [costs[i] for i in kept],
            )
        plan.items.extend(map(TrackItem, repeat("attributes"), objs, keys))
        plan.costs.extend(costs)

    def _sent_arrays(self, batch: pa.RecordBatch) -> list[pa.Array]:
        """The Arrow column behind each field a new user is sent, in mapping order."""
        return [batch.column(self.columns[c]) for _, c in self._send_plan(self._all_bits)[1]]


@dataclass
class BatchPlan:
    """What becomes of the rows of one diff batch (row indices where not objects)."""

    items: list[TrackItem] = default(default_factory=list)
    costs: list[int] = default(default_factory=list)  # data points, one per item
    commit_only: list[int] = default(default_factory=list)  # nothing to send: commit
    row_path: list[int] = default(default_factory=list)  # for the row-at-a-time path


def shaped_columns(
    sync: SyncConfig,
    columns: Sequence[str],
    dialect: str,
    times: set[str],
    snapshot: str | None = None,
) -> list[str]:
    """The diff's value columns as the engine should hand them over: identifier columns
    from the snapshot for removed rows, times already formatted. The snapshot is ``s``,
    joined by the caller, or with ``snapshot`` (its quoted name) looked up by key only for
    the rows that lack an identifier (``d`` has ``KEY``)."""
    ident_cols = set(sync.identifier.columns)
    out = []
    for column in columns:
        ref = quote_ident(column)
        if column in ident_cols and snapshot is not None:
            lookup = f"SELECT s.{ref} FROM {snapshot} AS s WHERE s.{KEY} = d.{KEY}"
            out.append(f"COALESCE(d.{ref}, ({lookup})) AS {ref}")
        elif column in ident_cols:
            out.append(f"COALESCE(d.{ref}, s.{ref}) AS {ref}")
        elif column in times:
            out.append(f"{time_sql(dialect, 'd.' + ref)} AS {ref}")
        else:
            out.append(f"d.{ref}")
    return out


def _falses(flags: list[bool]) -> list[int]:
    """The indices of the False entries of ``flags``."""
    return [i for i, flag in enumerate(flags) if not flag]
