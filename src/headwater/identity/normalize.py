"""Key values cleaned the way their libraries say, with the reason when one is kept out.

Emails and phones are cleaned once per distinct raw text and remembered in the warehouse
table ``<model>__hw_norm`` (kind, raw, value, reason): a later run only cleans the texts it
has never seen, which is what keeps an incremental run cheap. Plain values are cleaned in
SQL (``emails.py``, ``phones.py``); the rest by email-validator and phonenumbers.

Output: ``__hw_id_values`` (_rid, key, value) and ``__hw_id_bad`` (_rid, key, raw, reason).
A bad value links nobody; its record still joins through its other keys.
"""

from __future__ import annotations

import pyarrow as pa

from headwater.config import IdentityConfig, IdentityKey, ModelConfig
from headwater.engines import DuckDBEngine
from headwater.errors import FatalError
from headwater.identity import emails, phones
from headwater.identity.stage import RAW, RECORD_KEY
from headwater.sources.base import quote_ident, quote_literal

VALUES = "__hw_id_values"
BAD = "__hw_id_bad"
PYTHON_BATCH = 10_000


def cache_table(model_name: str) -> str:
    return f"{model_name}__hw_norm"


def _kind(key: IdentityKey) -> str:
    return "email" if key.type == "email" else f"phone:{key.default_region or ''}"


def _clean_new(engine: DuckDBEngine, cache: str, key_name: str, key: IdentityKey) -> int:
    """Clean the raw texts of ``key_name`` the cache has not seen; return how many."""
    con = engine.conn
    kind = _kind(key)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE __hw_id_new AS SELECT DISTINCT r.raw FROM "
        f"{RAW} AS r WHERE r.key = {quote_literal(key_name)} AND NOT EXISTS (SELECT 1 FROM "
        f"{cache} AS c WHERE c.kind = {quote_literal(kind)} AND c.raw = r.raw)"
    )
    module = emails if key.type == "email" else phones
    # The prepared text is stored, not recomputed per test: DuckDB would repeat it.
    con.execute(
        "CREATE OR REPLACE TEMP TABLE __hw_id_prep AS SELECT raw, "
        f"{module.prepare_sql('raw')} AS c FROM __hw_id_new"
    )
    if key.type == "email":
        fast = emails.fast_email_sql("__hw_id_prep")
    else:
        found = con.execute(phones.plus_codes_sql("__hw_id_prep")).fetchall()
        fast = phones.fast_e164_sql("__hw_id_prep", key.default_region, [r[0] for r in found])
    con.execute(
        f"INSERT INTO {cache} SELECT {quote_literal(kind)}, r, v, NULL FROM ({fast}) AS f(r, v)"
    )
    rest = con.execute(
        f"SELECT n.raw FROM __hw_id_new AS n WHERE NOT EXISTS (SELECT 1 FROM {cache} AS c "
        f"WHERE c.kind = {quote_literal(kind)} AND c.raw = n.raw)"
    ).fetchall()
    for start in range(0, len(rest), PYTHON_BATCH):
        chunk = [row[0] for row in rest[start : start + PYTHON_BATCH]]
        if key.type == "email":
            cleaned = [emails.normalize_email(raw) for raw in chunk]
        else:
            cleaned = [phones.normalize_phone(raw, key.default_region) for raw in chunk]
        batch = pa.table(
            {
                "kind": pa.array([kind] * len(chunk), pa.string()),
                "raw": pa.array(chunk, pa.string()),
                "value": pa.array([c[0] for c in cleaned], pa.string()),
                "reason": pa.array([c[1] for c in cleaned], pa.string()),
            }
        )
        con.register("__hw_id_batch", batch)
        try:
            con.execute(f"INSERT INTO {cache} SELECT * FROM __hw_id_batch")
        finally:
            con.unregister("__hw_id_batch")
    count = con.execute("SELECT count(*) FROM __hw_id_new").fetchall()[0][0]
    con.execute("DROP TABLE __hw_id_new")
    con.execute("DROP TABLE __hw_id_prep")
    return int(count)


def normalize_keys(engine: DuckDBEngine, model_name: str, identity: IdentityConfig) -> int:
    """Fill ``VALUES`` and ``BAD``; return how many raw texts were cleaned for the first time."""
    con = engine.conn
    cache = quote_ident(cache_table(model_name))
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {cache} "
        "(kind VARCHAR, raw VARCHAR, value VARCHAR, reason VARCHAR)"
    )
    cleaned = 0
    good, bad = [], []
    for key_name, key in identity.keys.items():
        name = quote_literal(key_name)
        if key.type == "string":
            expr = key.normalize or "trim(value)"
            try:
                con.execute(f"SELECT ({expr}) FROM (SELECT 'x' AS value) AS t").fetchall()
            except Exception as exc:
                raise FatalError(
                    f"model {model_name!r}: key {key_name!r}: normalize failed: "
                    f"{str(exc).splitlines()[0]}"
                ) from None
            inner = f"SELECT _rid, raw, CAST(({expr}) AS VARCHAR) AS v FROM (SELECT _rid, raw, raw AS value FROM {RAW} WHERE key = {name}) AS t"
            good.append(
                f"SELECT _rid, {name} AS key, v AS value FROM ({inner}) AS s WHERE v IS NOT NULL AND v <> ''"
            )
            bad.append(
                f"SELECT _rid, {name} AS key, raw, 'empty after normalize' AS reason "
                f"FROM ({inner}) AS s WHERE v IS NULL OR v = ''"
            )
            continue
        cleaned += _clean_new(engine, cache, key_name, key)
        kind = quote_literal(_kind(key))
        good.append(
            f"SELECT r._rid, {name} AS key, c.value FROM {RAW} AS r JOIN {cache} AS c "
            f"ON c.kind = {kind} AND c.raw = r.raw WHERE r.key = {name} AND c.value IS NOT NULL"
        )
        # The bad texts are few: joining them alone is far cheaper than every text again.
        bad.append(
            f"SELECT r._rid, {name} AS key, r.raw, c.reason FROM {RAW} AS r JOIN (SELECT raw, "
            f"reason FROM {cache} WHERE kind = {kind} AND value IS NULL) AS c "
            f"ON c.raw = r.raw WHERE r.key = {name}"
        )
    good.append(f"SELECT _rid, key, raw AS value FROM {RAW} WHERE key = '{RECORD_KEY}'")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {VALUES} AS {' UNION ALL '.join(good)}")
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {BAD} AS {' UNION ALL '.join(bad) if bad else 'SELECT NULL::BIGINT AS _rid, NULL AS key, NULL AS raw, NULL AS reason WHERE false'}"
    )
    return cleaned


def _key_columns(model: ModelConfig) -> list[str]:
    assert model.identity is not None
    return [c for c in model.columns if c in model.identity.keys]


def golden_columns_sql(model: ModelConfig, records: str = "r") -> list[str]:
    """The golden columns as read beside ``records`` with ``key_joins_sql``: each one named
    after a key is the key's cleaned value (never a bad one), the others the record's."""
    keyed = _key_columns(model)
    return [
        f"k{keyed.index(c)}.value AS {quote_ident(c)}"
        if c in keyed
        else f"{records}.{quote_ident(c)}"
        for c in model.columns
        if c != model.primary_key
    ]


def key_joins_sql(model: ModelConfig, records: str = "r") -> str:
    """The joins ``golden_columns_sql`` reads the cleaned key values through."""
    return " ".join(
        f"LEFT JOIN (SELECT _rid, value FROM {VALUES} WHERE key = {quote_literal(column)}) "
        f"AS k{i} ON k{i}._rid = {records}._rid"
        for i, column in enumerate(_key_columns(model))
    )
