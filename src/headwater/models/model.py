"""A model is a named SELECT over sources, with a primary key and declared column types.

``materialize_model`` runs it where the data already is and leaves a table of valid,
typed rows there for the sync engine's diff:

* File sources (and sql sources with a ``table``/``query``) are read in the embedded
  DuckDB warehouse: files become temporary views, database relations are copied once
  as Arrow.
* A model whose sources are all one PostgreSQL database (``source: app_db``, or SQL that
  only names sql sources sharing one URL) runs inside that database; nothing leaves it.
  Databases without a checker here (SQLite, for one) have the model's SELECT run there
  and its result copied into DuckDB for checking.

Checking happens in SQL (see ``checks.py``). Bad rows are rejected with a reason naming
the row and field, the rest go on; every rejected row is counted, but only the first
``max_details`` problems are kept in memory.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlglot
from sqlalchemy.engine import make_url
from sqlglot import exp

from headwater.config import ModelConfig, Project, SqlSourceConfig
from headwater.engines import DuckDBEngine, Engine, SqlAlchemyEngine
from headwater.errors import ConfigError, FatalError
from headwater.models.checks import DIALECTS, Dialect, PostgresDialect, never_null
from headwater.models.unique_source import source_keeps_key_unique
from headwater.sources.base import open_source, quote_ident, quote_literal
from headwater.sources.files import FileSource
from headwater.sources.sql import SqlSource, connection_error, database_url
from headwater.warehouse import DUCKDB_CONFIG

MAX_REJECTION_DETAILS = 1_000
MODEL_TABLE_PREFIX = "hw_model_"
ROW_COLUMN = "__hw_row"


@dataclass(frozen=True)
class RowRejection:
    """One problem with one row. ``row_key`` is the primary key, or ``row N`` without one."""

    row_key: str
    field: str
    reason: str
    row_number: int
    value: str | None = None  # the offending value as text (None: missing, or unknown)

    def __str__(self) -> str:
        where = self.row_key
        if not where.startswith("row "):
            where += f" (row {self.row_number})"
        return f"{where}: {self.field}: {self.reason}"


@dataclass
class ModelResult:
    model: str
    table: str  # a table in ``engine`` holding the valid, typed rows (declared columns only)
    row_count: int
    rejected_count: int  # rows rejected, all of them
    rejected: list[RowRejection] = field(default_factory=list)  # the first problems found
    engine: Engine | None = None
    primary_key: str = ""
    columns: dict[str, str] = field(default_factory=dict)  # column -> declared type
    # Non-null values per declared column among the valid rows, when checking counted them
    # (a model read in place): a sync prices a full resend from these, not another scan.
    value_counts: dict[str, int] | None = None
    # A model read in place is checked when ``start_checks`` (or ``finish_checks``) runs,
    # inside the transaction that reads it; until then its counts and rejections are empty.
    # Called, it starts the checks and returns the function that finishes them.
    pending_checks: Callable[[ModelResult], Callable[[], None]] | None = None
    # A model read in place: its rows as SQL another connection can run after ``setup``
    # (``table`` is a temporary view, which only this connection sees).
    relation_sql: str | None = None
    setup: tuple[str, ...] = ()

    def start_checks(self) -> Callable[[], int]:
        """Start the checks a model read in place left pending and return the function
        that waits for them and returns the model's valid rows. Inside a REPEATABLE READ
        transaction on PostgreSQL the checking read runs on a second connection sharing the
        transaction's snapshot, beside what the caller runs meanwhile (the diff): the
        counts, the row errors and every read of ``table`` in the transaction describe one
        state of the source. Keep the transaction open until the returned function ran."""
        if self.pending_checks is None:
            return lambda: self.row_count
        pending, self.pending_checks = self.pending_checks, None
        finish = pending(self)

        def finished() -> int:
            finish()
            return self.row_count

        return finished

    def finish_checks(self) -> int:
        """Run the checks a model read in place left pending (nothing otherwise) and return
        the model's valid rows (``start_checks`` with nothing run beside it)."""
        return self.start_checks()()


def model_table_name(model_name: str) -> str:
    return MODEL_TABLE_PREFIX + re.sub(r"\W", "_", model_name)


# --------------------------------------------------------------------------- placement


def read_tables(sql: str) -> set[str]:
    """Table names a SELECT reads (without its CTEs); empty when sqlglot cannot parse it."""
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except Exception:
        return set()
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    return {t.name for t in tree.find_all(exp.Table) if t.name and not t.db and t.name not in ctes}


def model_database(project: Project, model_name: str) -> str | None:
    """The sql source a model runs inside, or None for the DuckDB warehouse."""
    model = _model(project, model_name)
    if model.source:
        return model.source
    if model.sql is None:  # an identity model: its tables are in the warehouse
        return None
    names = read_tables(model.sql)
    sources = [project.sources[n] for n in names if n in project.sources]
    if not names or len(sources) != len(names):
        return None
    if all(isinstance(s, SqlSourceConfig) for s in sources):
        urls = {s.url.get_secret_value() for s in sources}  # type: ignore[union-attr]
        if len(urls) == 1:
            return sorted(names)[0]
    return None


def engine_for_model(project: Project, model_name: str) -> Engine:
    """Open the engine a model runs in. The caller closes it."""
    database = model_database(project, model_name)
    if database is not None:
        config = project.sources[database]
        assert isinstance(config, SqlSourceConfig)
        url = database_url(project, config)
        if url.startswith("postgresql"):
            try:
                return SqlAlchemyEngine(url)
            except Exception as exc:
                raise connection_error(database, url, exc) from None
    return open_warehouse(project)


def identity_database(project: Project, model: ModelConfig) -> str | None:
    """Where an identity model is resolved, from its configuration alone: the sql source
    (one of them) whose PostgreSQL database holds every relation the model's identity
    sources read; None when it is resolved in the warehouse. Here, below the identity
    package, so a model reading an identity model can be told where its table is."""
    assert model.identity is not None
    names: set[str] = set()
    for source in model.identity.sources.values():
        tables = read_tables(source.sql)
        if not tables:
            return None
        names |= tables
    configs = [project.sources.get(name) for name in names]
    if not all(isinstance(c, SqlSourceConfig) for c in configs):
        return None
    urls = {database_url(project, c) for c in configs}  # type: ignore[arg-type]
    if len(urls) != 1 or not urls.pop().startswith("postgresql"):
        return None
    return sorted(names)[0]


def open_warehouse(project: Project) -> DuckDBEngine:
    path = project.warehouse_path
    if path != ":memory:":
        project.resolve_path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = DuckDBEngine(path)
    _configure_duckdb(engine)
    return engine


def _configure_duckdb(engine: DuckDBEngine) -> None:
    for key, value in DUCKDB_CONFIG.items():
        literal = str(value).lower() if isinstance(value, bool) else f"'{value}'"
        engine.conn.execute(f"SET {key} = {literal}")


def _model(project: Project, model_name: str) -> ModelConfig:
    try:
        return project.models[model_name]
    except KeyError:
        raise ConfigError(f"no model named {model_name!r}") from None


# --------------------------------------------------------------------------- staging


def _strip(sql: str) -> str:
    return sql.strip().rstrip(";").strip()


def _rewrite_relations(sql: str, relations: dict[str, str], dialect: str) -> str:
    """Replace source names with their table or subquery in the database's own SQL."""
    if not relations:
        return sql
    tree = sqlglot.parse_one(sql, read=dialect)

    def swap(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Table) and not node.db and node.name in relations:
            alias = node.alias or node.name
            query = sqlglot.parse_one(
                f"SELECT * FROM {relations[node.name]} AS {quote_ident(alias)}", read=dialect
            )
            return query.find(exp.From).this
        return node

    return tree.transform(swap).sql(dialect=dialect)


def _stage_in_database(
    project: Project, model_name: str, model: ModelConfig, engine: SqlAlchemyEngine, stage: str
) -> str:
    """Stage the model's SQL as a view numbering its rows; return the SQL as run there."""
    relations = {}
    for name in read_tables(model.sql):
        config = project.sources.get(name)
        if isinstance(config, SqlSourceConfig) and (config.table or config.query):
            relations[name] = SqlSource(name, config, project).relation_sql()
    sql = _rewrite_relations(_strip(model.sql), relations, engine.dialect)
    _run_model_sql(
        engine,
        model_name,
        f"CREATE TEMP VIEW {stage} AS SELECT m.*, ROW_NUMBER() OVER () AS {ROW_COLUMN} "
        f"FROM ({sql}) AS m",
    )
    return sql


def _stage_in_duckdb(
    project: Project,
    model_name: str,
    model: ModelConfig,
    engine: DuckDBEngine,
    stage: str,
    depth: int,
) -> None:
    con = engine.conn
    database = model_database(project, model_name)
    if database is not None:
        # A model over a database we do not check natively: run its SELECT there and
        # bring the result here once.
        source = SqlSource(database, project.sources[database], project)  # type: ignore[arg-type]
        relations = {
            n: SqlSource(n, project.sources[n], project).relation_sql()  # type: ignore[arg-type]
            for n in read_tables(model.sql)
            if isinstance(project.sources.get(n), SqlSourceConfig)
            and (project.sources[n].table or project.sources[n].query)  # type: ignore[union-attr]
        }
        backend = make_url(source.url).get_backend_name()
        dialect = {"postgresql": "postgres"}.get(backend, backend)
        query = _rewrite_relations(_strip(model.sql), relations, dialect)
        pulled = SqlSource(
            model_name, SqlSourceConfig(type="sql", url=source.config.url, query=query), project
        )
        pulled.name = f"__hw_pull_{model_name}"
        pulled.register(con)
        sql = f"SELECT * FROM {quote_ident(pulled.name)}"
    else:
        for name in sorted(read_tables(model.sql)):
            if name in project.sources:
                source = open_source(project, name)
                if isinstance(source, FileSource):
                    source.register(con, materialize=True)
                else:
                    source.register(con)
            elif name in project.models and project.models[name].identity is not None:
                # An identity model is read as last resolved (``headwater resolve``).
                golden = f"{name}_golden"
                database = identity_database(project, project.models[name])
                if database is not None:
                    raise FatalError(
                        f"model {model_name!r} reads identity model {name!r}, which is resolved "
                        f"inside the PostgreSQL database of source {database!r}: read its "
                        f"table there (`source: {database}`, `select ... from {name}_golden`)"
                    )
                if not engine.table_exists(golden):
                    raise FatalError(
                        f"model {model_name!r} reads identity model {name!r}, which has not "
                        f"been resolved yet: run `headwater resolve {name}` first"
                    )
                con.execute(
                    f"CREATE OR REPLACE TEMP VIEW {quote_ident(name)} AS "
                    f"SELECT * FROM {quote_ident(golden)}"
                )
            elif name in project.models and name != model_name:
                if depth > 8:
                    raise ConfigError(f"model {model_name!r}: models read each other in a loop")
                inner = materialize_model(project, name, engine, _depth=depth + 1)
                con.execute(
                    f"CREATE OR REPLACE TEMP VIEW {quote_ident(name)} AS "
                    f"SELECT * FROM {quote_ident(inner.table)}"
                )
        sql = _strip(model.sql)
    # A view, not a table: the checking step reads the files once, straight through,
    # instead of the rows being written here and read back there.
    _run_model_sql(
        engine,
        model_name,
        f"CREATE OR REPLACE TEMP VIEW {stage} AS SELECT m.*, ROW_NUMBER() OVER () AS "
        f"{ROW_COLUMN} FROM ({sql}) AS m",
    )


def _execute(engine: Engine, sql: str) -> None:
    """Run one statement. On SQLAlchemy engines it goes straight to the driver: model SQL
    is the user's, and a ``%`` in it (``LIKE '%@%'``) must not be read as a placeholder."""
    _fetch(engine, sql, rows=False)


def _fetch(engine: Engine, sql: str, *, rows: bool = True) -> list[tuple]:
    if not isinstance(engine, SqlAlchemyEngine):
        if rows:
            return engine.fetch_all(sql)
        engine.execute(sql)
        return []
    if engine._depth:  # inside engine.transaction()
        return _driver_run(engine, sql, rows)
    with engine.transaction():
        return _driver_run(engine, sql, rows)


def _driver_run(engine: SqlAlchemyEngine, sql: str, rows: bool) -> list[tuple]:
    found = engine.fetch_raw(sql)
    return found if rows else []


def _run_model_sql(engine: Engine, model_name: str, sql: str) -> None:
    try:
        _execute(engine, sql)
    except FatalError:
        raise
    except Exception as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise FatalError(f"model {model_name!r}: its SQL failed: {detail}") from None


def _stage_columns(engine: Engine, stage: str) -> dict[str, str]:
    if engine.dialect == "duckdb":
        rows = _fetch(engine, f"DESCRIBE {stage}")
    else:
        rows = _fetch(
            engine,
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            f"WHERE a.attrelid = {quote_literal(stage)}::regclass AND a.attnum > 0 AND NOT a.attisdropped "
            "ORDER BY a.attnum",
        )
    return {row[0]: row[1] for row in rows if row[0] != ROW_COLUMN}


# --------------------------------------------------------------------------- checking


@dataclass(frozen=True)
class _CheckedColumns:
    """A model's declared columns as SQL over its staged rows: ``typed`` converts column i
    into ``__hw_t{i}``, ``declared`` names it as declared, ``problems`` holds the reasons
    (over ``__hw_t{i}``) by the index of the columns that can be rejected."""

    typed: list[str]
    declared: list[str]
    problems: dict[int, str]
    pk_ref: str
    fine: dict[int, str]  # true when column i passes its checks (``problems[i]`` is NULL)
    counted: list[str]  # what to count to count column i's typed values: the raw column
    # when typing never turns a value into NULL (it costs nothing to read)


def _checked_columns(
    model_name: str, model: ModelConfig, staged: dict[str, str], dialect: Dialect
) -> _CheckedColumns:
    by_lower = {name.lower(): name for name in staged}
    typed, declared, counted = [], [], []
    problems: dict[int, str] = {}
    fine: dict[int, str] = {}
    pk_ref = ""
    for i, (column, spec) in enumerate(model.columns.items()):
        actual = column if column in staged else by_lower.get(column.lower())
        if actual is None:
            raise FatalError(
                f"model {model_name!r}: column {column!r} is declared but the SQL does not "
                f"return it (it returns: {', '.join(staged) or 'no columns'})"
            )
        ref = f"__hw_t{i}"
        sql = dialect.column(
            quote_ident(actual),
            staged[actual],
            spec,
            required=spec.required or column == model.primary_key,
            typed_ref=ref,
        )
        typed.append(f"{sql.typed} AS {ref}")
        declared.append(f"{ref} AS {quote_ident(column)}")
        raw = quote_ident(actual)
        counted.append(raw if never_null(raw, sql.typed) else ref)
        if sql.problem is not None:
            problems[i] = sql.problem
            fine[i] = sql.fine or f"({sql.problem}) IS NULL"
        if column == model.primary_key:
            pk_ref = ref
    return _CheckedColumns(typed, declared, problems, pk_ref, fine, counted)


def _select_checked(
    model_name: str,
    model: ModelConfig,
    staged: dict[str, str],
    dialect: Dialect,
    stage: str,
    *,
    count_duplicates: bool = True,
    row_column: bool = True,
) -> tuple[str, dict[int, str]]:
    """The SELECT typing and checking every row, and its problem columns by the index of
    the declared column they check (columns that cannot be rejected have none).

    ``count_duplicates=False`` leaves out ``__hw_dups`` and ``__hw_key`` (every byte of a
    million rows is written): the caller adds the count (``_mark_duplicates``: a sort of
    every row costs more than finding that there are no duplicates another way) and reads
    the key from the primary key column. ``row_column=False``: the stage numbers no rows."""
    cols = _checked_columns(model_name, model, staged, dialect)
    problems = {i: f"__hw_p{i}" for i in cols.problems}
    problem_cols = [f"{sql} AS __hw_p{i}" for i, sql in cols.problems.items()]
    key_cols = (
        [
            f"CAST({cols.pk_ref} AS {dialect.text_type}) AS __hw_key",
            f"COUNT(*) OVER (PARTITION BY {cols.pk_ref}) AS __hw_dups",
        ]
        if count_duplicates
        else []
    )
    # OFFSET 0 keeps PostgreSQL from inlining the inner SELECT (and so converting twice).
    inner = f"SELECT s.*, {', '.join(cols.typed)} FROM {stage} AS s OFFSET 0"
    select = (
        f"SELECT {', '.join([*([ROW_COLUMN] if row_column else []), *cols.declared, *problem_cols, *key_cols])} "
        f"FROM ({inner}) AS x"
    )
    return select, problems


def _mark_duplicates(engine: SqlAlchemyEngine, table: str, key: str) -> None:
    """Add ``__hw_dups`` (1 for every row, without rewriting the table) and count where a
    key is shared: a unique index proves in one pass that none is (and stays, for the
    diff's lookups by key); only when it cannot be built are the shared keys counted."""
    _execute(engine, f"ALTER TABLE {table} ADD COLUMN __hw_dups BIGINT NOT NULL DEFAULT 1")
    try:
        _execute(engine, f"CREATE UNIQUE INDEX ON {table} ({key})")
        return
    except Exception:  # shared keys, or keys too long to index: count them instead
        pass
    _execute(
        engine,
        f"UPDATE {table} AS t SET __hw_dups = d.n FROM (SELECT {key} AS k, count(*) AS n "
        f"FROM {table} WHERE {key} IS NOT NULL GROUP BY {key} HAVING count(*) > 1) AS d "
        f"WHERE t.{key} = d.k",
    )


def materialize_model(
    project: Project,
    model_name: str,
    engine: Engine | None = None,
    *,
    table: str | None = None,
    max_details: int = MAX_REJECTION_DETAILS,
    in_place: bool = False,
    _depth: int = 0,
) -> ModelResult:
    """Run a model and leave its valid, typed rows in ``table`` inside ``engine``.

    Without ``engine`` the model's own engine is opened (``engine_for_model``) and
    returned in the result; the caller closes it. With a DuckDB engine, a model over a
    database is copied into DuckDB; with a PostgreSQL engine the model must run there.

    ``in_place``: the caller reads ``table`` only through ``engine``'s own connection
    (a sync). A PostgreSQL model whose source keeps its key unique (``unique_source``)
    is then left where it is: ``table`` is a temporary view of its valid, typed rows, not
    a table written and indexed each run, and its rows are checked in one read when the
    caller runs ``result.finish_checks()`` (in the transaction that reads the view).
    """
    model = _model(project, model_name)
    if model.identity is not None:
        raise ConfigError(
            f"model {model_name!r} is an identity model: resolve it with `headwater resolve "
            f"{model_name}` (headwater.identity.materialize_any in Python)"
        )
    if engine is None:
        engine = engine_for_model(project, model_name)
    elif engine.dialect == "duckdb":
        _configure_duckdb(engine)  # type: ignore[arg-type]
    dialect_cls = DIALECTS.get(engine.dialect)
    if dialect_cls is None:
        raise FatalError(f"model {model_name!r}: cannot check models in {engine.dialect}")
    dialect = dialect_cls()
    table_name = table or model_table_name(model_name)
    table = quote_ident(table_name)
    safe = re.sub(r"\W", "_", model_name)
    # Every name below is quoted where it is made and where it is used, so a model called
    # ``People`` is the same table on PostgreSQL (which folds unquoted names) and DuckDB.
    stage, checked = quote_ident(f"__hw_stage_{safe}"), quote_ident(f"__hw_checked_{safe}")

    for statement in dialect.setup:
        _execute(engine, statement)
    _drop_temps(engine, stage, checked)
    if engine.dialect == "duckdb":
        _stage_in_duckdb(project, model_name, model, engine, stage, _depth)  # type: ignore[arg-type]
        staged = _stage_columns(engine, stage)
    else:
        database = model_database(project, model_name)
        if database is None:
            raise FatalError(
                f"model {model_name!r} reads files, so it runs in the DuckDB warehouse, "
                f"not in {engine.dialect}"
            )
        sql = _stage_in_database(project, model_name, model, engine, stage)  # type: ignore[arg-type]
        staged = _stage_columns(engine, stage)
        if in_place and _reads_in_place(engine, model, staged, sql):  # type: ignore[arg-type]
            return _materialize_in_place(
                engine, model_name, model, staged, sql, stage, table_name, checked, max_details
            )

    duck = engine.dialect == "duckdb"
    select, problems = _select_checked(
        model_name, model, staged, dialect, stage, count_duplicates=duck
    )
    ok = " AND ".join([*(f"{p} IS NULL" for p in problems.values()), "__hw_dups = 1"])
    if duck:  # the model's own SQL runs here (the stage is a view)
        _run_model_sql(engine, model_name, f"CREATE TEMP TABLE {checked} AS {select}")
        _keep_valid_rows(engine, model, table, checked, ok)
        valid, bad = _count_valid(engine, checked, ok)
        details = _rejection_details(
            engine, model, problems, checked, max_details, bad, text_type=dialect.text_type
        )
    else:
        # PostgreSQL: the checked rows are written once, into what becomes the model
        # table: invalid rows and the check columns are dropped in place (a dropped column
        # costs nothing), so a run writes the model's rows one time, not three.
        draft_name = f"{table_name}__draft"
        draft = quote_ident(draft_name)
        _execute(engine, f"DROP TABLE IF EXISTS {draft}")
        _execute(engine, f"CREATE UNLOGGED TABLE {draft} AS {select}")
        _mark_duplicates(engine, draft, quote_ident(model.primary_key))  # type: ignore[arg-type]
        valid, bad = _count_valid(engine, draft, ok)
        key = f"CAST({quote_ident(model.primary_key)} AS TEXT)"  # type: ignore[arg-type]
        details = _rejection_details(
            engine, model, problems, draft, max_details, bad, key, text_type=dialect.text_type
        )
        with engine.transaction():
            if bad:
                _execute(engine, f"DELETE FROM {draft} WHERE NOT ({ok})")  # ok is never NULL
            extra = [ROW_COLUMN, *problems.values(), "__hw_dups"]
            _execute(
                engine,
                f"ALTER TABLE {draft} " + ", ".join(f"DROP COLUMN {c}" for c in extra),
            )
            _drop_model_relation(engine, table_name)
            _execute(engine, f"ALTER TABLE {draft} RENAME TO {table}")
    _drop_temps(engine, stage, checked)
    return ModelResult(
        model=model_name,
        table=table_name,
        row_count=valid,
        rejected_count=bad,
        rejected=details,
        engine=engine,
        primary_key=model.primary_key,
        columns={name: spec.type for name, spec in model.columns.items()},
    )


def _reads_in_place(
    engine: SqlAlchemyEngine, model: ModelConfig, staged: dict[str, str], sql: str
) -> bool:
    """Whether a sync can read this PostgreSQL model where it is: its key kept unique by
    the source and typed without merging values (the text itself, or a whole number made
    wider or text), and no ``object`` column (a resend's price reads those values through
    a second connection, which cannot see a temporary view)."""
    if any(spec.type == "object" for spec in model.columns.values()):
        return False
    key = model.primary_key
    assert key is not None
    actual = key if key in staged else {n.lower(): n for n in staged}.get(key.lower())
    if actual is None:
        return False
    raw = quote_ident(actual)
    whole = staged[actual].lower() in ("smallint", "integer", "bigint")
    if not whole and PostgresDialect().typed(raw, staged[actual], model.columns[key]) != raw:
        return False  # ' 7' and '7' may both become 7
    try:
        with engine.transaction():
            return source_keeps_key_unique(engine, sql, actual)
    except Exception:  # a query PostgreSQL cannot explain: check it the long way
        return False


def _materialize_in_place(
    engine: SqlAlchemyEngine,
    model_name: str,
    model: ModelConfig,
    staged: dict[str, str],
    sql: str,
    stage: str,
    table_name: str,
    checked: str,
    max_details: int,
) -> ModelResult:
    """Leave the valid rows as a temporary view over the source, and the checks pending:
    one read that writes nothing (counts, and each column's values for pricing a resend).

    No duplicate count: the source's unique index rules them out. Rows are numbered (a
    window over every row) only when some are rejected, to name them."""
    dialect = PostgresDialect()
    cols = _checked_columns(model_name, model, staged, dialect)
    fine = " AND ".join(cols.fine.values()) or "TRUE"
    # Typed over the model's rows (the source's own columns, then the typed ones).
    typed_rows = f"(SELECT s.*, {', '.join(cols.typed)} FROM ({sql}) AS s) AS x"
    relation_sql = f"SELECT {', '.join(cols.declared)} FROM {typed_rows} WHERE {fine}"
    with engine.transaction():
        _drop_model_relation(engine, table_name)
        # No OFFSET 0: PostgreSQL folds this into the source's own scan, so the diff walks
        # the source's unique index in key order.
        _execute(engine, f"CREATE TEMP VIEW {quote_ident(table_name)} AS {relation_sql}")

    def check(result: ModelResult) -> Callable[[], None]:
        # Grouped by whether the row is fine: each check runs once a row, not once a count.
        # It reads the source itself (no temporary view), so it can run beside the diff.
        counted = engine.fetch_beside(
            f"SELECT {fine}, count(*), {', '.join(f'count({c})' for c in cols.counted)} "
            f"FROM {typed_rows} GROUP BY 1",
            dialect.setup,
        )
        return lambda: details(result, counted())

    def details(result: ModelResult, rows: list[tuple]) -> None:
        groups = {bool(row[0]): row[1:] for row in rows}
        counts = groups.get(True, [0] * (1 + len(cols.counted)))
        result.row_count = int(counts[0])
        result.rejected_count = bad = int(groups.get(False, [0])[0])
        result.value_counts = {c: int(n) for c, n in zip(model.columns, counts[1:], strict=True)}
        if bad and max_details > 0:
            select, problems = _select_checked(
                model_name, model, staged, dialect, stage, count_duplicates=False
            )
            ok = " AND ".join(f"{p} IS NULL" for p in problems.values()) or "TRUE"
            _execute(
                engine,
                f"CREATE TEMP TABLE {checked} AS SELECT * FROM ({select}) AS c WHERE NOT ({ok})",
            )
            _execute(engine, f"ALTER TABLE {checked} ADD COLUMN __hw_dups BIGINT DEFAULT 1")
            key = f"CAST({quote_ident(model.primary_key)} AS TEXT)"  # type: ignore[arg-type]
            result.rejected = _rejection_details(
                engine, model, problems, checked, max_details, bad, key, text_type="TEXT"
            )
        _drop_temps(engine, stage, checked)

    return ModelResult(
        model=model_name,
        table=table_name,
        row_count=0,
        rejected_count=0,
        engine=engine,
        primary_key=model.primary_key,
        columns={name: spec.type for name, spec in model.columns.items()},
        pending_checks=check,
        relation_sql=relation_sql,
        setup=dialect.setup,
    )


def _drop_model_relation(engine: Engine, table_name: str) -> None:
    """Drop what holds a PostgreSQL model's rows: this session's view, a table, or both
    (a view read in place shadows a table an earlier run left)."""
    name = quote_literal(quote_ident(table_name))
    for _ in range(2):
        found = _fetch(engine, f"SELECT relkind FROM pg_class WHERE oid = to_regclass({name})")
        if not found:
            return
        kind = "VIEW" if found[0][0] == "v" else "TABLE"
        _execute(engine, f"DROP {kind} {quote_ident(table_name)}")


def _keep_valid_rows(engine: Engine, model: ModelConfig, table: str, checked: str, ok: str) -> None:
    """The model's table in DuckDB: a temporary table of this connection, in file order.
    Every run rebuilds it, so writing it into the warehouse file (a second or more per
    million rows) would buy nothing, and two runs over one model cannot trip on each
    other's. (A table left in the file by an older version is dropped too.)"""
    columns = ", ".join(quote_ident(c) for c in model.columns)
    with engine.transaction():
        for _ in ("temporary", "stored"):
            _execute(engine, f"DROP TABLE IF EXISTS {table}")
        _execute(
            engine,
            f"CREATE TEMP TABLE {table} AS SELECT {columns} FROM {checked} WHERE {ok} "
            f"ORDER BY {ROW_COLUMN}",
        )


def _count_valid(engine: Engine, checked: str, ok: str) -> tuple[int, int]:
    valid, bad = _fetch(
        engine,
        f"SELECT SUM(CASE WHEN {ok} THEN 1 ELSE 0 END), SUM(CASE WHEN {ok} THEN 0 ELSE 1 END) "
        f"FROM {checked}",
    )[0]
    return int(valid or 0), int(bad or 0)


def _drop_temps(engine: Engine, stage: str, checked: str) -> None:
    _execute(engine, f"DROP VIEW IF EXISTS {stage}")
    _execute(engine, f"DROP TABLE IF EXISTS {checked}")


def _rejection_details(
    engine: Engine,
    model: ModelConfig,
    problems: dict[int, str],
    checked: str,
    limit: int,
    rejected: int,
    key_sql: str = "__hw_key",
    text_type: str = "TEXT",
) -> list[RowRejection]:
    if limit <= 0 or not rejected:
        return []
    names = list(model.columns)

    def value(index: int) -> str:
        return f"substr(CAST({quote_ident(names[index])} AS {text_type}), 1, {VALUE_CHARS})"

    parts = [
        f"SELECT {ROW_COLUMN}, {key_sql}, {i} AS field_index, {p} AS reason, "
        f"{value(i)} AS value FROM {checked} WHERE {p} IS NOT NULL"
        for i, p in problems.items()
    ]
    pk_index = names.index(model.primary_key)
    parts.append(
        f"SELECT {ROW_COLUMN}, {key_sql}, {pk_index} AS field_index, "
        f"'duplicate primary key: ' || CAST(__hw_dups AS TEXT) || ' rows have it' AS reason, "
        f"{value(pk_index)} AS value FROM {checked} WHERE __hw_dups > 1 AND {key_sql} IS NOT NULL"
    )
    rows = _fetch(
        engine,
        f"SELECT * FROM ({' UNION ALL '.join(parts)}) AS r "
        f"ORDER BY {ROW_COLUMN}, field_index LIMIT {int(limit)}",
    )
    return [
        RowRejection(
            row_key=str(key) if key not in (None, "") else f"row {row}",
            field=names[index],
            reason=reason,
            row_number=int(row),
            value=shown if shown is not None else _quoted_value(reason),
        )
        for row, key, index, reason, shown in rows
    ]


VALUE_CHARS = 500  # an offending value is kept this long at most
_GOT = re.compile(r"(?:got|pattern:) '(.*)'\Z", re.DOTALL)


def _quoted_value(reason: str) -> str | None:
    """A value that did not convert is NULL once typed: its reason quotes it."""
    found = _GOT.search(reason)
    return found.group(1) if found else None


def reason_without_value(reason: str, shown: str) -> str:
    """``reason`` with the value it quotes replaced by ``shown`` (a secret field's)."""
    found = _GOT.search(reason)
    if not found:
        return reason
    return reason[: found.start(1)] + shown + reason[found.end(1) :]
