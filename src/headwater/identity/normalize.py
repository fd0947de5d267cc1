"""Key values cleaned the way their libraries say, with the reason when one is kept out.

Emails and phones are cleaned once per distinct raw text and remembered beside the
outputs, in table ``<model>__hw_norm`` (kind, raw, value, reason): a later run only cleans
the texts it has never seen, which is what keeps an incremental run cheap. Plain values are cleaned in
SQL (``emails.py``, ``phones.py``); the rest by email-validator and phonenumbers.

Output: ``__hw_id_values`` (_rid, key, value) and ``__hw_id_bad`` (_rid, key, raw, reason).
A bad value links nobody; its record still joins through its other keys.
"""

from __future__ import annotations

import pyarrow as pa

from headwater.config import IdentityConfig, IdentityKey, ModelConfig
from headwater.engines import Engine, quote_table
from headwater.errors import FatalError
from headwater.identity import emails, phones
from headwater.identity.dialect import count, empty_temp_table, temp_table
from headwater.identity.stage import RAW, RECORD_KEY
from headwater.sources.base import quote_ident, quote_literal

VALUES = "__hw_id_values"
BAD = "__hw_id_bad"
PYTHON_BATCH = 10_000


def cache_table(model_name: str) -> str:
    return f"{model_name}__hw_norm"


def _kind(key: IdentityKey) -> str:
    return "email" if key.type == "email" else f"phone:{key.default_region or ''}"


def _clean_new(engine: Engine, cache_name: str, key_name: str, key: IdentityKey) -> int:
    """Clean the raw texts of ``key_name`` the cache has not seen; return how many."""
    cache = quote_table(cache_name)
    dialect = engine.dialect
    kind = _kind(key)
    temp_table(
        engine,
        "__hw_id_new",
        f"SELECT DISTINCT r.raw FROM {RAW} AS r WHERE r.key = {quote_literal(key_name)} "
        f"AND NOT EXISTS (SELECT 1 FROM {cache} AS c WHERE c.kind = {quote_literal(kind)} "
        "AND c.raw = r.raw)",
    )
    module = emails if key.type == "email" else phones
    # The prepared text is stored, not recomputed per test: DuckDB would repeat it.
    temp_table(
        engine, "__hw_id_prep", f"SELECT raw, {module.prepare_sql('raw')} AS c FROM __hw_id_new"
    )
    if key.type == "email":
        fast = emails.fast_email_sql("__hw_id_prep", dialect)
    else:
        found = engine.fetch_all(phones.plus_codes_sql("__hw_id_prep"))
        fast = phones.fast_e164_sql(
            "__hw_id_prep", key.default_region, [r[0] for r in found], dialect
        )
    engine.execute(
        f"INSERT INTO {cache} SELECT {quote_literal(kind)}, r, v, NULL FROM ({fast}) AS f(r, v)"
    )
    rest = engine.fetch_all(
        f"SELECT n.raw FROM __hw_id_new AS n WHERE NOT EXISTS (SELECT 1 FROM {cache} AS c "
        f"WHERE c.kind = {quote_literal(kind)} AND c.raw = n.raw)"
    )
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
        engine.load_arrow(cache_name, batch, replace=False)  # in bulk (COPY in PostgreSQL)
    cleaned = count(engine, "__hw_id_new")
    engine.execute("DROP TABLE __hw_id_new")
    engine.execute("DROP TABLE __hw_id_prep")
    return cleaned


def normalize_keys(engine: Engine, model_name: str, identity: IdentityConfig) -> int:
    """Fill ``VALUES`` and ``BAD``; return how many raw texts were cleaned for the first
    time. ``model_name`` may be ``schema.model`` (the tables' prefix)."""
    cache_name = cache_table(model_name)
    cache = quote_table(cache_name)
    engine.execute(
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
                engine.fetch_all(
                    f"SELECT ({expr}) FROM (SELECT CAST('x' AS VARCHAR) AS value) AS t"
                )
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
        cleaned += _clean_new(engine, cache_name, key_name, key)
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
    temp_table(engine, VALUES, " UNION ALL ".join(good))
    if bad:
        temp_table(engine, BAD, " UNION ALL ".join(bad))
    else:
        empty_temp_table(engine, BAD, "_rid BIGINT, key VARCHAR, raw VARCHAR, reason VARCHAR")
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
