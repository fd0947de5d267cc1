"""The golden record: one row per person, each column chosen by its survivorship rule.

* ``source_priority`` (the default): the value from the most trusted source (lowest
  ``priority``), the most recent record breaking ties;
* ``most_recent``: the most recently updated record's non-null value;
* ``most_frequent``: the value most records agree on, the most recent breaking ties.

Nulls never win: a person keeps a value as long as one of its records has one. Every rule
ends its ordering on the record number, so a run gives the same answer twice.
"""

from __future__ import annotations

from headwater.config import ModelConfig
from headwater.sources.base import quote_ident

RECENT = "_updated_at DESC NULLS LAST"
TIEBREAK = "_rid"


def golden_select(model: ModelConfig, records: str, person: str, labels: str) -> str:
    """SELECT person_id, <columns...> over ``records`` joined to person ids."""
    golden = [(c, s) for c, s in model.columns.items() if c != model.primary_key]
    counts, picks = [], []
    for i, (column, spec) in enumerate(golden):
        col = quote_ident(column)
        rule = spec.survivorship or "source_priority"
        if rule == "source_priority":
            order = f"_priority, {RECENT}, {TIEBREAK}"
        elif rule == "most_recent":
            order = f"{RECENT}, _priority, {TIEBREAK}"
        else:
            counts.append(f"COUNT({col}) OVER (PARTITION BY person_id, {col}) AS __hw_f{i}")
            order = f"__hw_f{i} DESC, {RECENT}, _priority, {TIEBREAK}"
        picks.append(f"FIRST({col} ORDER BY {order}) FILTER (WHERE {col} IS NOT NULL) AS {col}")
    base = (
        f"SELECT p.person_id, r.* FROM {records} AS r JOIN {labels} AS l ON l._rid = r._rid "
        f"JOIN {person} AS p ON p.lbl = l.lbl"
    )
    if counts:
        base = f"SELECT *, {', '.join(counts)} FROM ({base}) AS b"
    columns = ", ".join(["person_id", *picks])
    return f"SELECT {columns} FROM ({base}) AS g GROUP BY person_id"
