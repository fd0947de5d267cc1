"""The golden record: one row per person, each column chosen by its survivorship rule.

* ``source_priority`` (the default): the value from the most trusted source (lowest
  ``priority``), the most recent record breaking ties;
* ``most_recent``: the most recently updated record's non-null value;
* ``most_frequent``: the value most records agree on, the most recent breaking ties.

Nulls never win: a person keeps a value as long as one of its records has one. Every rule
ends its ordering on the record's source and id (then its row, for an id listed twice), not
on its position in the source, so a run gives the same answer twice, and an incremental run
the answer of a full one, even when a source's rows come back in another order.
"""

from __future__ import annotations

from headwater.config import ModelConfig
from headwater.sources.base import quote_ident

# Sort keys as structs for arg_min (far faster in DuckDB than ordered aggregates):
# lower wins; a missing time sorts last.
PRIORITY = "_priority"
RECENT = "COALESCE(-epoch_us(_updated_at), 9223372036854775807)"
TIEBREAK = ("_source_index", "_record_id", "_rid")


def _key(*parts: str) -> str:
    return "struct_pack(" + ", ".join(f"k{i} := {p}" for i, p in enumerate(parts)) + ")"


def golden_select(model: ModelConfig, records: str, by: str = "person_id") -> str:
    """SELECT ``by``, <columns...> over ``records`` (the staged records, each with the
    ``by`` of its person): one row per person."""
    golden = [(c, s) for c, s in model.columns.items() if c != model.primary_key]
    aggregates, picks, joins = [], [], []
    for i, (column, spec) in enumerate(golden):
        col = quote_ident(column)
        rule = spec.survivorship or "source_priority"
        if rule == "most_frequent":
            # Per person and value: how many records hold it and its best record by the
            # tie-break; then the value with the most records, the best record among
            # equals. The same pick as ranking every record by (-count, tie-break), without
            # a window over all records (a sort carrying every column).
            best = _key(RECENT, PRIORITY, *TIEBREAK)
            f = f"__hw_f{i}"
            joins.append(
                f"LEFT JOIN (SELECT {by}, ARG_MIN(__hw_v, struct_pack(n := -__hw_n, "
                f"best := __hw_best)) AS __hw_v FROM (SELECT {by}, {col} AS __hw_v, "
                f"COUNT(*) AS __hw_n, MIN({best}) AS __hw_best FROM {records} "
                f"WHERE {col} IS NOT NULL GROUP BY {by}, {col}) AS c GROUP BY {by}) AS {f} "
                f"ON {f}.{by} = g.{by}"
            )
            picks.append(f"{f}.__hw_v AS {col}")
            continue
        if rule == "source_priority":
            key = _key(PRIORITY, RECENT, *TIEBREAK)
        else:
            key = _key(RECENT, PRIORITY, *TIEBREAK)
        aggregates.append(f"ARG_MIN({col}, {key}) FILTER (WHERE {col} IS NOT NULL) AS {col}")
        picks.append(f"g.{col}")
    grouped = f"SELECT {', '.join([by, *aggregates])} FROM {records} GROUP BY {by}"
    return f"SELECT {', '.join([f'g.{by}', *picks])} FROM ({grouped}) AS g {' '.join(joins)}"
