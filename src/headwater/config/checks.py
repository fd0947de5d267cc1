"""Checks across sections, run on the raw document so they report even when other parts
of the file are wrong: names, references between sections, removals Braze cannot do."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from headwater.config.document import Document, Loc
from headwater.config.models import declared_columns


def _table_names(sql: str) -> set[str] | None:
    """Tables a SELECT reads, minus its own CTEs; None if sqlglot cannot parse it."""
    import sqlglot
    from sqlglot import exp

    try:
        statements = sqlglot.parse(sql, read="duckdb")
    except Exception:
        return None
    if len(statements) != 1 or statements[0] is None:
        return None
    tree = statements[0]
    if not isinstance(tree, exp.Query):
        return set(["<not a select>"])
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    names = set()
    for table in tree.find_all(exp.Table):
        if table.name and table.name not in ctes:
            names.add(table.db + "." + table.name if table.db else table.name)
    return names


# Names become table names (``hw_model_<name>``), cache directories and URL parts, so they
# are identifiers: no path separators, no dots, short enough for PostgreSQL's 63-byte names
# with Headwater's longest prefix and suffix around them.
NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,39}")
NAMED_SECTIONS = ("destinations", "sources", "models", "syncs", "streams", "audiences")


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a source, model, sync, stream or destination (else None)."""
    if NAME_PATTERN.fullmatch(name):
        return None
    return (
        f"{name!r} is not a valid name: use letters, digits, _ and -, start with a letter, "
        "at most 40 characters"
    )


def check_names(raw: dict[str, Any], doc: Document) -> None:
    """Every name the file declares is an identifier, and no two in a section turn into
    the same table name (``People``/``people``, ``a-b``/``a_b``)."""
    for section in NAMED_SECTIONS:
        entries = raw.get(section)
        if not isinstance(entries, dict):
            continue
        seen: dict[str, str] = {}
        for name in entries:
            if not isinstance(name, str):
                continue  # pydantic reports keys that are not strings
            problem = name_problem(name)
            if problem:
                doc.problem((section, name), problem)
                continue
            folded = name.lower().replace("-", "_")
            if folded in seen:
                doc.problem(
                    (section, name),
                    f"{name!r} and {seen[folded]!r} would share tables and caches; "
                    "names must differ in more than case or - and _",
                )
            seen.setdefault(folded, name)


def cross_check(raw: dict[str, Any], doc: Document) -> None:
    """References between sections; runs on the raw data so it reports even when other
    parts of the file are wrong."""

    def section(name: str) -> dict[str, Any]:
        value = raw.get(name)
        return value if isinstance(value, dict) else {}

    sources, models = section("sources"), section("models")
    destinations, syncs = section("destinations"), section("syncs")

    for name, model in models.items():
        if not isinstance(model, dict):
            continue
        columns = model.get("columns") if isinstance(model.get("columns"), dict) else {}
        pk = model.get("primary_key")
        if isinstance(pk, str) and columns and pk not in columns:
            doc.problem(
                ("models", name, "primary_key"),
                f"primary key {pk!r} is not declared in columns",
            )
        source = model.get("source")
        if isinstance(source, str):
            if source not in sources:
                doc.problem(("models", name, "source"), f"no source named {source!r}")
            elif isinstance(sources[source], dict) and sources[source].get("type") != "sql":
                doc.problem(
                    ("models", name, "source"),
                    f"source {source!r} is a file source; only sql sources run models "
                    "(file models run in the warehouse)",
                )
        sql_locs: list[tuple[Loc, Any]] = [(("models", name, "sql"), model.get("sql"))]
        identity = model.get("identity")
        id_sources = identity.get("sources") if isinstance(identity, dict) else None
        for id_name, id_source in (
            (id_sources or {}).items() if isinstance(id_sources, dict) else ()
        ):
            if isinstance(id_source, dict):
                loc = ("models", name, "identity", "sources", id_name, "sql")
                sql_locs.append((loc, id_source.get("sql")))
        for loc, sql in sql_locs:
            if not isinstance(sql, str) or source is not None:
                continue
            tables = _table_names(sql)
            if tables == {"<not a select>"}:
                doc.problem(loc, "must be a single SELECT statement")
            elif tables:
                for table in sorted(tables - set(sources) - set(models)):
                    doc.problem(
                        loc,
                        f"reads {table!r}, which is not a source"
                        + (f" (sources: {', '.join(sorted(sources))})" if sources else ""),
                    )

    gateway = section("gateway")
    if gateway:
        dest = gateway.get("destination")
        if isinstance(dest, str) and dest not in destinations:
            doc.problem(("gateway", "destination"), f"no destination named {dest!r}")

    for name, trigger in section("triggers").items():  # config/triggers.py
        if not isinstance(trigger, dict):
            continue
        dest = trigger.get("destination", "braze")
        if isinstance(dest, str) and dest not in destinations:
            doc.problem(("triggers", name, "destination"), f"no destination named {dest!r}")
        when = trigger.get("when")
        stream = when.get("stream") if isinstance(when, dict) else None
        if isinstance(stream, str) and stream != "gateway" and stream not in section("streams"):
            doc.problem(("triggers", name, "when", "stream"), f"no stream named {stream!r}")

    for name, sync in syncs.items():
        if not isinstance(sync, dict):
            continue
        dest = sync.get("destination")
        if isinstance(dest, str) and dest not in destinations:
            doc.problem(("syncs", name, "destination"), f"no destination named {dest!r}")
        model_name = sync.get("model")
        if not isinstance(model_name, str):
            continue
        if model_name not in models:
            doc.problem(("syncs", name, "model"), f"no model named {model_name!r}")
            continue
        declared = declared_columns(models[model_name])
        if declared is None:
            continue
        for loc, column in _sync_column_refs(sync):
            if isinstance(column, str) and column not in declared:
                doc.problem(
                    ("syncs", name, *loc),
                    f"column {column!r} is not declared in model {model_name!r}",
                )


def check_removals(raw: dict[str, Any], doc: Document) -> None:
    """Braze deletes users by external_id, alias or braze_id only: ``on_removed: delete``
    by email or phone would fail every removal at run time, so it fails here instead."""
    syncs = raw.get("syncs")
    for name, sync in (syncs or {}).items() if isinstance(syncs, dict) else ():
        if not isinstance(sync, dict) or sync.get("on_removed") != "delete":
            continue
        ident = sync.get("identifier")
        kinds = sorted({"email", "phone"} & set(ident)) if isinstance(ident, dict) else []
        if kinds:
            doc.problem(
                ("syncs", name, "on_removed"),
                f"delete needs an external_id, user_alias or braze_id identifier, not "
                f"{kinds[0]} (Braze deletes users by those only); use unset or keep",
            )


def _sync_column_refs(sync: dict[str, Any]) -> Iterable[tuple[Loc, Any]]:
    ident = sync.get("identifier")
    if isinstance(ident, dict):
        for kind, value in ident.items():
            if kind == "user_alias" and isinstance(value, dict):
                yield ("identifier", "user_alias", "name"), value.get("name")
            elif kind != "user_alias":
                yield ("identifier", kind), value
    for block, literals in (("mapping", ()), ("event", ("name",)), ("purchase", ("currency",))):
        value = sync.get(block)
        if not isinstance(value, dict):
            continue
        for key, column in value.items():
            if key in literals:
                continue
            if key == "properties" and isinstance(column, dict):
                for prop, col in column.items():
                    yield (block, "properties", prop), col
            else:
                yield (block, key), column
