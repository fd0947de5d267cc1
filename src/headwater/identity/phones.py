"""Phone numbers to E.164, as phonenumbers decides, at SQL speed for the common forms.

phonenumbers costs ~90 µs a number here: a million phones would take a minute and a half
in Python. So the library's own metadata (its per-region patterns and possible lengths) is
compiled into one SQL expression that DuckDB (or PostgreSQL) evaluates for the plain
forms: ``+`` and digits, or the default region's national digits, with spaces, ``-``,
``.``, ``(``, ``)``.
A number the fast path does not accept (invalid, an extension, a trunk prefix, letters, a
leading zero...) goes to ``phonenumbers.parse`` itself, so the fast path can only ever
agree with the library: tests/identity/test_phones.py checks it does.

The rules mirrored are ``phonenumberutil._region_code_for_number_from_list`` (which region of
a shared calling code a number belongs to: leading digits first, then the first region whose
patterns it matches) and ``_number_type_helper`` (valid = matches the general description and
one number type). Numbers that parsing would touch (the region's national prefix for parsing)
are left to the library.
"""

from __future__ import annotations

from functools import lru_cache

import phonenumbers
from phonenumbers import PhoneMetadata
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

from headwater.identity.dialect import full_match, search
from headwater.sources.base import quote_literal

# Valid = the general pattern and any one type's: the order does not change the answer, and
# the common types first spare most numbers the rest (PostgreSQL: 10.1 s against 15.8 s for
# 477,906 distinct phones at 1M, loaded machine).
_TYPE_DESCS = (
    "fixed_line",
    "mobile",
    "toll_free",
    "premium_rate",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
)
# The characters the fast path removes; anything else sends the value to the library.
STRIP_CHARS = " -.()"


def normalize_phone(raw: str, region: str | None) -> tuple[str | None, str | None]:
    """(E.164, None) or (None, why not): phonenumbers' own verdict."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        if region is None and not raw.strip().startswith("+"):
            return None, "not a phone number: no +country code, and the key has no default_region"
        return None, f"not a phone number: {exc._msg}"
    if not phonenumbers.is_valid_number(number):
        return None, "not a valid phone number" + (
            "" if raw.strip().startswith("+") or region else " (no + and no default_region)"
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), None


def _desc_sql(desc, n: str, dialect: str) -> str | None:
    if desc is None or desc.national_number_pattern is None:
        return None
    test = full_match(dialect, n, desc.national_number_pattern)
    if desc.possible_length:
        lengths = ", ".join(str(x) for x in desc.possible_length)
        test = f"(length({n}) IN ({lengths}) AND {test})"
    return test


def _valid_sql(metadata, n: str, dialect: str) -> str:
    general = _desc_sql(metadata.general_desc, n, dialect)
    types = [t for t in (_desc_sql(getattr(metadata, d), n, dialect) for d in _TYPE_DESCS) if t]
    if general is None or not types:
        return "false"
    return f"({general} AND ({' OR '.join(types)}))"


@lru_cache(maxsize=512)
def validity_sql(country_code: int, n: str = "n", dialect: str = "duckdb") -> str:
    """A SQL boolean: national significant number ``n`` is valid under ``country_code``."""
    whens = []
    for region in COUNTRY_CODE_TO_REGION_CODE.get(country_code, ()):
        metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)
        if metadata is None:
            continue
        if metadata.leading_digits is not None:
            lead = search(dialect, n, "^(?:" + metadata.leading_digits + ")")
            whens.append(f"WHEN {lead} THEN {_valid_sql(metadata, n, dialect)}")
        else:
            whens.append(f"WHEN {_valid_sql(metadata, n, dialect)} THEN true")
    if not whens:
        return "false"
    return f"(CASE {' '.join(whens)} ELSE false END)"


def _parse_prefix_sql(country_code: int, n: str, dialect: str) -> str:
    """A SQL boolean: parsing would try to strip a national prefix from ``n``."""
    region = phonenumbers.region_code_for_country_code(country_code)
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)
    prefix = getattr(metadata, "national_prefix_for_parsing", None) if metadata else None
    if not prefix:
        return "false"
    return search(dialect, n, "^(?:" + prefix + ")")


def country_code_sql(d: str) -> str:
    """The calling code at the start of digit string ``d`` (codes are prefix-free)."""
    by_length: dict[int, list[str]] = {1: [], 2: [], 3: []}
    for code in COUNTRY_CODE_TO_REGION_CODE:
        if code and len(str(code)) in by_length:
            by_length[len(str(code))].append(quote_literal(str(code)))
    whens = " ".join(
        f"WHEN substr({d}, 1, {k}) IN ({', '.join(codes)}) THEN {k}"
        for k, codes in by_length.items()
    )
    return f"(CASE {whens} ELSE NULL END)"


def prepare_sql(raw: str) -> str:
    """The text the fast path tests: trimmed, without ``STRIP_CHARS`` (computed once)."""
    return f"regexp_replace(trim({raw}), '[ ().-]', '', 'g')"


def fast_e164_sql(table: str, region: str | None, codes: list[int], dialect: str = "duckdb") -> str:
    """SELECT r, e164 for the values of ``table`` (raw, c), c = ``prepare_sql(raw)``, the
    fast path accepts: a subset of what phonenumbers accepts, with the same E.164.
    ``codes``: the calling codes to consider (``plus_codes_sql``)."""
    region_code = phonenumbers.country_code_for_region(region) if region else 0
    parts = []
    plus_cases = []
    for code in codes:
        cc = str(code)
        n = f"substr(d, {len(cc) + 1})"
        ok = f"NOT {_parse_prefix_sql(code, n, dialect)} AND {validity_sql(code, n, dialect)}"
        plus_cases.append(f"WHEN {quote_literal(cc)} THEN {ok}")
    if plus_cases:
        parts.append(
            f"SELECT r, '+' || d AS e164 FROM (SELECT raw AS r, substr(c, 2) AS d, "
            f"substr(c, 2, {country_code_sql('substr(c, 2)')}) AS cc FROM {table} "
            f"WHERE {full_match(dialect, 'c', '[+][1-9][0-9]{3,16}')}) AS p "
            f"WHERE CASE cc {' '.join(plus_cases)} ELSE false END"
        )
    if region_code:
        n = "c"
        ok = (
            f"NOT {_parse_prefix_sql(region_code, n, dialect)} "
            f"AND {validity_sql(region_code, n, dialect)}"
        )
        idd = PhoneMetadata.metadata_for_region(region).international_prefix
        if idd:  # digits starting with the region's international prefix are international
            ok = f"NOT {search(dialect, 'c', '^(?:' + idd + ')')} AND {ok}"
        parts.append(
            f"SELECT raw AS r, '+{region_code}' || c AS e164 FROM {table} "
            f"WHERE {full_match(dialect, 'c', '[1-9][0-9]{1,16}')} AND {ok}"
        )
    if not parts:
        return "SELECT CAST(NULL AS VARCHAR) AS r, CAST(NULL AS VARCHAR) AS e164 WHERE false"
    return " UNION ALL ".join(parts)


def plus_codes_sql(table: str) -> str:
    """SELECT the distinct calling codes the ``+`` values of ``table`` (raw, c) start with."""
    return (
        f"SELECT DISTINCT CAST(substr(d, 1, {country_code_sql('d')}) AS INTEGER) FROM "
        f"(SELECT substr(c, 2) AS d FROM {table} WHERE substr(c, 1, 1) = '+') AS p "
        f"WHERE {country_code_sql('d')} IS NOT NULL"
    )
