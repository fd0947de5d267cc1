"""Typing and checking model rows in SQL, so millions of rows never visit Python.

For each declared column we build two SQL expressions from the column's *actual* type in
the staged result: ``typed`` converts the value (NULL when it cannot), and ``problem``
names what is wrong (NULL when nothing is). Only rows whose problems are all NULL (and
whose primary key is unique) reach the model table; the problems become row-level
rejections. One dialect class per engine that can do this natively: DuckDB has
TRY_CAST and JSON functions; PostgreSQL gets regular-expression guards before each
cast, plus two tiny session-local functions for timestamps and JSON (pg_temp).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from headwater.config import ColumnSpec
from headwater.sources.base import quote_literal

INTEGER_RE = r"^\s*[+-]?[0-9]{1,18}(\.0*)?\s*$"
FLOAT_RE = r"^\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\s*$"
TIME_PREFIX_RE = r"^\s*[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"
TRUE_WORDS = ("true", "t", "yes", "y", "1")
FALSE_WORDS = ("false", "f", "no", "n", "0")
VALUE_PREVIEW_CHARS = 40


@dataclass(frozen=True)
class ColumnSql:
    typed: str
    problem: str | None
    # True exactly when ``problem`` is NULL, written so PostgreSQL's planner can estimate
    # it (it takes ``CASE ... END IS NULL`` to keep 0.5 % of rows, and plans for that).
    fine: str | None = None


def _words(words: tuple[str, ...]) -> str:
    return ", ".join(quote_literal(w) for w in words)


class Dialect:
    name: str
    text_type: str
    setup: tuple[str, ...] = ()

    def as_text(self, expr: str) -> str:
        return f"CAST({expr} AS {self.text_type})"

    def text_of(self, raw: str, raw_type: str) -> str:
        """The value as text, as a user would write it (JSON strings unquoted)."""
        return self.as_text(raw)

    def typed(self, raw: str, raw_type: str, spec: ColumnSpec) -> str:
        raise NotImplementedError

    def matches(self, expr: str, pattern: str) -> str:
        raise NotImplementedError

    def column(
        self, raw: str, raw_type: str, spec: ColumnSpec, *, required: bool, typed_ref: str
    ) -> ColumnSql:
        """The typed value, and the reason it is rejected (NULL when it is fine).

        The problem expression reads the typed value through ``typed_ref`` (a column the
        caller computes once in an inner SELECT), so conversions run once per row."""
        typed = typed_ref
        conversion = self.typed(raw, raw_type, spec)
        text = self.text_of(raw, raw_type)
        # Only text can be blank; other types are missing only when NULL. A conversion that
        # is the value itself or one plain CAST never turns a value into NULL, so it needs
        # no "expected <type>" check: on millions of rows those cost more than the rest.
        if self.is_text(raw_type):
            blank = f"({raw} IS NULL OR trim({text}) = '')"
        else:
            blank = f"({raw} IS NULL)"
        preview = f"substr({text}, 1, {VALUE_PREVIEW_CHARS})"
        cases: list[tuple[str, str]] = []  # (when, reason): a reason is never NULL
        if required:
            cases.append((blank, "'required but missing'"))
        if not never_null(raw, conversion):
            cases.append(
                (
                    f"NOT {blank} AND ({typed}) IS NULL",
                    f"'expected {spec.type}, got ''' || {preview} || ''''",
                )
            )
        if spec.max_length is not None:
            length = self.as_text(f"length({typed})")
            cases.append(
                (
                    f"length({typed}) > {spec.max_length}",
                    f"'longer than {spec.max_length} characters (' || {length} || ')'",
                )
            )
        if spec.pattern is not None:
            cases.append(
                (
                    f"({typed}) IS NOT NULL AND NOT {self.matches(typed, spec.pattern)}",
                    f"'does not match the pattern: ''' || {preview} || ''''",
                )
            )
        if not cases:
            return ColumnSql(typed=conversion, problem=None)
        problem = "CASE " + " ".join(f"WHEN {w} THEN {r}" for w, r in cases) + " END"
        fine = " AND ".join(f"({w}) IS NOT TRUE" for w, _ in cases)
        return ColumnSql(typed=conversion, problem=problem, fine=fine)

    def is_text(self, raw_type: str) -> bool:
        """Whether values of ``raw_type`` are text that may be blank (or JSON holding it)."""
        t = raw_type.lower()
        return t in ("text", "json", "jsonb") or t.startswith(("varchar", "character"))


def never_null(raw: str, conversion: str) -> bool:
    """The value itself, or one plain CAST of it: a value in gives a value out (or the
    statement fails), never NULL."""
    if conversion == raw:
        return True
    plain_cast = rf"CAST\({re.escape(raw)} AS [A-Za-z ]+(\[\])?\)"
    return re.fullmatch(plain_cast, conversion) is not None


class DuckDBDialect(Dialect):
    name = "duckdb"
    text_type = "VARCHAR"

    def matches(self, expr: str, pattern: str) -> str:
        return f"regexp_full_match({expr}, {quote_literal(pattern)})"

    def text_of(self, raw: str, raw_type: str) -> str:
        # JSON columns (mixed values in a JSON file) hold '"abc"'; unquote strings, and
        # double-encoded documents ('"[1,2]"') become the document they encode.
        if raw_type.upper() == "JSON":
            return f"json_extract_string({raw}, '$')"
        return f"CAST({raw} AS VARCHAR)"

    def typed(self, raw: str, raw_type: str, spec: ColumnSpec) -> str:
        t = raw_type.upper()
        is_text = t in ("VARCHAR", "JSON") or t.startswith("VARCHAR")
        numeric = t in _DUCK_INTS or t in _DUCK_FLOATS or t.startswith("DECIMAL")
        text = self.text_of(raw, raw_type)
        kind = spec.type
        if kind == "string":
            return raw if t == "VARCHAR" else text
        if kind == "integer":
            if t in _DUCK_INTS:
                return f"CAST({raw} AS BIGINT)"
            if numeric:
                return f"CASE WHEN {raw} = trunc({raw}) THEN TRY_CAST({raw} AS BIGINT) END"
            return (
                f"CASE WHEN regexp_full_match({text}, {quote_literal(INTEGER_RE)}) "
                f"THEN TRY_CAST(TRY_CAST(trim({text}) AS DOUBLE) AS BIGINT) END"
            )
        if kind == "float":
            if numeric:
                return f"CAST({raw} AS DOUBLE)"
            return (
                f"CASE WHEN regexp_full_match({text}, {quote_literal(FLOAT_RE)}) "
                f"THEN TRY_CAST(trim({text}) AS DOUBLE) END"
            )
        if kind == "boolean":
            if t == "BOOLEAN":
                return raw
            return (
                f"CASE WHEN lower(trim({text})) IN ({_words(TRUE_WORDS)}) THEN true "
                f"WHEN lower(trim({text})) IN ({_words(FALSE_WORDS)}) THEN false END"
            )
        if kind == "time":
            if t.startswith(("TIMESTAMP", "DATE")):
                return f"CAST({raw} AS TIMESTAMPTZ)"
            return f"TRY_CAST({text} AS TIMESTAMPTZ)"
        if kind == "array":
            if t.endswith("[]") or t.startswith("LIST"):
                return f"CAST({raw} AS VARCHAR[])"
            if spec.split is not None and is_text:
                parts = f"string_split({text}, {quote_literal(spec.split)})"
                return f"list_filter(list_transform({parts}, lambda x: trim(x)), lambda x: x <> '')"
            return (
                f"CASE WHEN json_valid({text}) AND json_type({text}) = 'ARRAY' "
                f"THEN from_json({text}, '[\"VARCHAR\"]') END"
            )
        if kind == "object":
            if t.startswith(("STRUCT", "MAP")):
                return f"to_json({raw})"
            return (
                f"CASE WHEN json_valid({text}) AND json_type({text}) = 'OBJECT' "
                f"THEN CAST({text} AS JSON) END"
            )
        raise AssertionError(kind)


_DUCK_INTS = {
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT",
    "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT",
}  # fmt: skip
_DUCK_FLOATS = {"FLOAT", "DOUBLE", "REAL"}


class PostgresDialect(Dialect):
    name = "postgres"
    text_type = "TEXT"
    setup = (
        "SET TIME ZONE 'UTC'",
        "CREATE OR REPLACE FUNCTION pg_temp.hw_try_timestamptz(v text) RETURNS timestamptz "
        "LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN RETURN v::timestamptz; "
        "EXCEPTION WHEN others THEN RETURN NULL; END $$",
        "CREATE OR REPLACE FUNCTION pg_temp.hw_json_object(v text) RETURNS jsonb "
        "LANGUAGE plpgsql IMMUTABLE AS $$ DECLARE d jsonb; BEGIN d := v::jsonb; "
        "RETURN CASE WHEN jsonb_typeof(d) = 'object' THEN d END; "
        "EXCEPTION WHEN others THEN RETURN NULL; END $$",
        "CREATE OR REPLACE FUNCTION pg_temp.hw_json_text_array(v text) RETURNS text[] "
        "LANGUAGE plpgsql IMMUTABLE AS $$ DECLARE d jsonb; BEGIN d := v::jsonb; "
        "IF jsonb_typeof(d) <> 'array' THEN RETURN NULL; END IF; "
        "RETURN ARRAY(SELECT jsonb_array_elements_text(d)); "
        "EXCEPTION WHEN others THEN RETURN NULL; END $$",
    )

    def matches(self, expr: str, pattern: str) -> str:
        return f"({expr} ~ {quote_literal('^(?:' + pattern + ')$')})"

    def typed(self, raw: str, raw_type: str, spec: ColumnSpec) -> str:
        t = raw_type.lower()
        is_int = t in ("smallint", "integer", "bigint")
        numeric = is_int or t.startswith(("numeric", "double", "real"))
        is_json = t in ("json", "jsonb")
        text = f"CAST({raw} AS TEXT)"
        kind = spec.type
        if kind == "string":
            return raw if t == "text" or t.startswith(("character", "varchar")) else text
        if kind == "integer":
            if is_int:
                return f"CAST({raw} AS BIGINT)"
            if numeric:
                return (
                    f"CASE WHEN {raw} = trunc({raw}) AND abs({raw}) < 9e18 "
                    f"THEN CAST({raw} AS BIGINT) END"
                )
            return (
                f"CASE WHEN {text} ~ {quote_literal(INTEGER_RE)} "
                f"THEN CAST(CAST(trim({text}) AS NUMERIC) AS BIGINT) END"
            )
        if kind == "float":
            if numeric:
                return f"CAST({raw} AS DOUBLE PRECISION)"
            return (
                f"CASE WHEN {text} ~ {quote_literal(FLOAT_RE)} "
                f"THEN CAST(trim({text}) AS DOUBLE PRECISION) END"
            )
        if kind == "boolean":
            if t == "boolean":
                return raw
            return (
                f"CASE WHEN lower(trim({text})) IN ({_words(TRUE_WORDS)}) THEN true "
                f"WHEN lower(trim({text})) IN ({_words(FALSE_WORDS)}) THEN false END"
            )
        if kind == "time":
            if t.startswith(("timestamp", "date")):
                return f"CAST({raw} AS TIMESTAMPTZ)"
            return (
                f"CASE WHEN {text} ~ {quote_literal(TIME_PREFIX_RE)} "
                f"THEN pg_temp.hw_try_timestamptz({text}) END"
            )
        if kind == "array":
            if t.endswith("[]"):
                return f"CAST({raw} AS TEXT[])"
            if spec.split is not None and not is_json:
                parts = f"string_to_array({text}, {quote_literal(spec.split)})"
                return (
                    f"CASE WHEN {raw} IS NOT NULL THEN ARRAY(SELECT trim(x) FROM unnest({parts}) "
                    "AS x WHERE trim(x) <> '') END"
                )
            if is_json:
                return (
                    f"CASE WHEN jsonb_typeof(CAST({raw} AS JSONB)) = 'array' THEN "
                    f"ARRAY(SELECT jsonb_array_elements_text(CAST({raw} AS JSONB))) END"
                )
            return f"pg_temp.hw_json_text_array({text})"
        if kind == "object":
            if is_json:
                return (
                    f"CASE WHEN jsonb_typeof(CAST({raw} AS JSONB)) = 'object' "
                    f"THEN CAST({raw} AS JSONB) END"
                )
            return f"pg_temp.hw_json_object({text})"
        raise AssertionError(kind)


DIALECTS: dict[str, type[Dialect]] = {"duckdb": DuckDBDialect, "postgres": PostgresDialect}
