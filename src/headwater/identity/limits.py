"""Limit rules: the merges a shared value must not cause, refused and written down.

Two rules, as Hightouch and RudderStack have them:

* ``max_records_per_value``: a value held by more records than the limit
  (``test@example.com``, a call-centre phone) links nobody.
* ``max_per_person``: a person never holds more values of a key than this (two CRM ids).
  After the components are found, a component breaking the rule has the values that
  bridge it refused: first every value whose own records carry too many values of the key,
  else (the link is a chain) its most shared linking value (junk is shared most; among
  equals the least trusted key, keys being trusted in the order they are declared). Its
  records are then resolved again, until no component breaks a rule: a record holds one
  value per key, so this ends (``MAX_SPLIT_ROUNDS`` guards it).

Every refusal lands in ``__hw_id_refused`` (key, value, records, rule, reason).
"""

from __future__ import annotations

from headwater.config import IdentityConfig
from headwater.engines import DuckDBEngine
from headwater.errors import FatalError
from headwater.identity.components import connected_components
from headwater.identity.normalize import VALUES
from headwater.identity.stage import RECORD_KEY, RECORDS
from headwater.sources.base import quote_literal

REFUSED = "__hw_id_refused"
LABELS = "__hw_id_labels"
PRESPLIT = "__hw_id_presplit"  # (_rid, lbl): the components before max_per_person split them
EDGES = "__hw_id_edges"
MAX_SPLIT_ROUNDS = 200


def limit_sql(identity: IdentityConfig) -> str:
    """SQL giving a row's ``max_records_per_value`` from its ``key`` (NULL: no limit)."""
    whens = " ".join(
        f"WHEN {quote_literal(name)} THEN {key.max_records_per_value or identity.max_records_per_value}"
        for name, key in identity.keys.items()
    )
    return f"CASE key {whens} ELSE NULL END"


def resolve_components(
    engine: DuckDBEngine, identity: IdentityConfig, counts: str | None = None
) -> int:
    """Fill ``LABELS`` (_rid, lbl) for every record, ``PRESPLIT`` and ``REFUSED``; return
    CC rounds. ``counts`` (key, value, n): how many records hold each value, when
    ``VALUES`` holds only part of them (an incremental run); its values over the limit
    are the ones refused."""
    con = engine.conn
    # A record holds one value per key, so counting rows counts records.
    if counts is None:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE __hw_id_counts AS SELECT key, value, "
            f"COUNT(*) AS n, {limit_sql(identity)} AS lim FROM {VALUES} GROUP BY key, value"
        )
    else:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE __hw_id_counts AS SELECT key, value, n, "
            f"{limit_sql(identity)} AS lim FROM {counts}"
        )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {REFUSED} AS SELECT key, value, n AS records, "
        "'max_records_per_value' AS rule, 'held by ' || n || ' records (limit ' || lim || ')' "
        "AS reason FROM __hw_id_counts WHERE lim IS NOT NULL AND n > lim"
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE __hw_id_vids AS SELECT key, value, n, "
        "CAST(ROW_NUMBER() OVER () AS BIGINT) AS vid FROM __hw_id_counts "
        "WHERE n > 1 AND (lim IS NULL OR n <= lim)"
    )
    con.execute("DROP TABLE __hw_id_counts")
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {EDGES} AS SELECT v._rid, i.vid FROM {VALUES} AS v "
        "JOIN __hw_id_vids AS i ON i.key = v.key AND i.value = v.value"
    )
    rounds = connected_components(
        engine, EDGES, "__hw_id_cc", max_iterations=identity.max_iterations
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {LABELS} AS SELECT r._rid, COALESCE(c.lbl, r._rid) AS lbl "
        f"FROM {RECORDS} AS r LEFT JOIN __hw_id_cc AS c ON c._rid = r._rid"
    )
    con.execute("DROP TABLE __hw_id_cc")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {PRESPLIT} AS SELECT * FROM {LABELS}")
    limited = {k: key.max_per_person for k, key in identity.keys.items() if key.max_per_person}
    order = [k for k in identity.keys] + [RECORD_KEY]
    for _ in range(MAX_SPLIT_ROUNDS):
        if not limited or not _split_once(engine, identity, limited, order):
            break
    else:
        raise FatalError(
            f"limit rules: persons still break max_per_person after {MAX_SPLIT_ROUNDS} rounds "
            "of refusing their links; lower max_records_per_value so junk values are "
            "refused up front"
        )
    for table in ("__hw_id_vids", EDGES):  # read by nothing after the labels: memory
        con.execute(f"DROP TABLE IF EXISTS {table}")
    return rounds


def _split_once(
    engine: DuckDBEngine, identity: IdentityConfig, limited: dict[str, int], order: list[str]
) -> bool:
    """Refuse the bridges of components breaking ``max_per_person``; resolve them again.
    Return False when no component breaks it."""
    con = engine.conn
    checks = " UNION ALL ".join(
        f"SELECT l.lbl, {quote_literal(k)} AS limited_key, {m} AS lim FROM {LABELS} AS l "
        f"JOIN {VALUES} AS v ON v._rid = l._rid WHERE v.key = {quote_literal(k)} "
        f"GROUP BY l.lbl HAVING COUNT(DISTINCT v.value) > {m}"
        for k, m in limited.items()
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE __hw_id_bad_cc AS {checks}")
    if not con.execute("SELECT COUNT(*) FROM __hw_id_bad_cc").fetchall()[0][0]:
        return False
    # The linking values inside broken components, with how many limited values each
    # value's own records carry.
    con.execute(
        "CREATE OR REPLACE TEMP TABLE __hw_id_links AS SELECT DISTINCT b.lbl, b.limited_key, "
        "b.lim, i.vid, i.key, i.value, i.n FROM __hw_id_bad_cc AS b "
        f"JOIN {LABELS} AS l ON l.lbl = b.lbl JOIN {EDGES} AS e ON e._rid = l._rid "
        "JOIN __hw_id_vids AS i ON i.vid = e.vid WHERE i.key <> b.limited_key"
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE __hw_id_bridges AS SELECT k.lbl, k.limited_key, k.lim, "
        "k.vid, k.key, k.value, k.n, COUNT(DISTINCT lv.value) AS held FROM __hw_id_links AS k "
        f"JOIN {EDGES} AS e ON e.vid = k.vid JOIN {VALUES} AS lv ON lv._rid = e._rid "
        "AND lv.key = k.limited_key GROUP BY ALL HAVING COUNT(DISTINCT lv.value) > k.lim"
    )
    rank = (
        "CASE key "
        + " ".join(f"WHEN {quote_literal(k)} THEN {i}" for i, k in enumerate(order))
        + " END"
    )
    # Components without a direct bridge: refuse their most shared linking value (junk is
    # shared most), the least trusted key first among equals; one per component and round.
    con.execute(
        "INSERT INTO __hw_id_bridges SELECT lbl, limited_key, lim, vid, key, value, n, NULL "
        f"FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY lbl ORDER BY n DESC, {rank} DESC, "
        "value) AS pick FROM __hw_id_links WHERE lbl NOT IN (SELECT lbl FROM __hw_id_bridges)) "
        "AS x WHERE pick = 1"
    )
    con.execute(
        f"INSERT INTO {REFUSED} SELECT key, value, n, 'max_per_person', "
        "CASE WHEN held IS NULL THEN 'links records in a chain that would give one person more than ' "
        "|| lim || ' ' || limited_key || ' value' || CASE WHEN lim = 1 THEN '' ELSE 's' END "
        "ELSE 'its records hold ' || held || ' ' || limited_key || ' values (max ' || lim || ' per person)' END "
        "FROM (SELECT DISTINCT ON (vid) * FROM __hw_id_bridges "
        "ORDER BY vid, held NULLS LAST, limited_key, lim)"
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE __hw_id_sub AS SELECT e._rid, e.vid FROM "
        f"{EDGES} AS e JOIN {LABELS} AS l ON l._rid = e._rid WHERE l.lbl IN "
        "(SELECT lbl FROM __hw_id_bad_cc) AND e.vid NOT IN (SELECT vid FROM __hw_id_bridges)"
    )
    con.execute(f"DELETE FROM {EDGES} WHERE vid IN (SELECT vid FROM __hw_id_bridges)")
    connected_components(
        engine, "__hw_id_sub", "__hw_id_subcc", max_iterations=identity.max_iterations
    )
    con.execute(
        f"UPDATE {LABELS} SET lbl = COALESCE((SELECT s.lbl FROM __hw_id_subcc AS s "
        f"WHERE s._rid = {LABELS}._rid), {LABELS}._rid) WHERE lbl IN (SELECT lbl FROM __hw_id_bad_cc)"
    )
    for table in (
        "__hw_id_bad_cc",
        "__hw_id_links",
        "__hw_id_bridges",
        "__hw_id_sub",
        "__hw_id_subcc",
    ):
        con.execute(f"DROP TABLE IF EXISTS {table}")
    return True
