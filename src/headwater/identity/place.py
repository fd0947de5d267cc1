"""Where an identity model is resolved: inside the PostgreSQL database holding its sources,
or in the DuckDB warehouse.

When every identity source's SQL reads only sql sources of one PostgreSQL database (one
URL), the whole resolution runs in that database, as a model over it does for a sync:
nothing leaves it. The outputs and bookkeeping tables are written there too, in the
connection's default schema or in ``identity.output_schema``. Anything else (files, two
databases, SQLite, another model) is resolved in the warehouse, the database sources
being copied into it.
"""

from __future__ import annotations

from headwater.config import ModelConfig, Project, SqlSourceConfig
from headwater.engines import DuckDBEngine, Engine, SqlAlchemyEngine, quote_ident
from headwater.errors import ConfigError, FatalError
from headwater.models.model import (
    _rewrite_relations,
    identity_database,
    open_warehouse,
    read_tables,
)
from headwater.sources.sql import SqlSource, connection_error, database_url


def identity_model(project: Project, model_name: str) -> ModelConfig:
    """The identity model ``model_name``; ConfigError when there is none by that name."""
    model = project.models.get(model_name)
    if model is None:
        raise ConfigError(f"no model named {model_name!r}")
    if model.identity is None:
        raise ConfigError(f"model {model_name!r} is not an identity model (it has no identity:)")
    return model


# PostgreSQL cuts names at 63 bytes without an error; the longest table a run writes is
# ``<model>__hw_records__hw_next`` (the state's draft), so longer names would collide.
PG_NAME_BYTES = 63
LONGEST_SUFFIX = len("__hw_records__hw_next")


def open_identity_engine(project: Project, model_name: str) -> Engine:
    """The engine ``model_name`` is resolved in (the caller closes it)."""
    model = identity_model(project, model_name)
    database = identity_database(project, model)
    if database is None:
        return open_warehouse(project)
    if len(model_name.encode()) + LONGEST_SUFFIX > PG_NAME_BYTES:
        raise ConfigError(
            f"model {model_name!r} is resolved inside PostgreSQL, whose table names hold at "
            f"most {PG_NAME_BYTES} bytes: name it with at most "
            f"{PG_NAME_BYTES - LONGEST_SUFFIX} bytes (its tables add up to "
            f"{LONGEST_SUFFIX} characters)"
        )
    config = project.sources[database]
    assert isinstance(config, SqlSourceConfig)
    url = database_url(project, config)
    try:
        return SqlAlchemyEngine(url)
    except Exception as exc:
        raise connection_error(database, url, exc) from None


def runs_in(engine: Engine, project: Project, model_name: str) -> bool:
    """Whether ``engine`` is where ``model_name`` is resolved (a warehouse passed in for a
    model placed in PostgreSQL is not)."""
    placed = identity_database(project, project.models[model_name]) is not None
    return placed == (engine.dialect == "postgres")


def base_name(engine: Engine, model_name: str, model: ModelConfig) -> str:
    """The prefix of the model's tables in ``engine``: ``model`` or ``schema.model``."""
    assert model.identity is not None
    schema = model.identity.output_schema
    if schema is None or isinstance(engine, DuckDBEngine):
        return model_name
    return f"{schema}.{model_name}"


def table_base(engine: Engine, model_name: str, model: ModelConfig) -> str:
    """The prefix of the model's tables: ``model`` or ``schema.model`` (``output_schema``,
    created when missing). Tables are named ``<base>_golden``, ``<base>__hw_norm``..."""
    assert model.identity is not None
    schema = model.identity.output_schema
    if schema is None:
        return model_name
    if isinstance(engine, DuckDBEngine):
        raise FatalError(
            f"model {model_name!r}: output_schema applies to a model resolved inside "
            "PostgreSQL; this one reads other sources and is resolved in the warehouse"
        )
    engine.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
    return f"{schema}.{model_name}"


def source_sql(project: Project, engine: Engine, sql: str) -> str:
    """An identity source's SQL as it runs in ``engine``: in PostgreSQL, each sql source it
    names becomes its table or subquery there."""
    sql = sql.strip().rstrip(";").strip()
    if engine.dialect != "postgres":
        return sql
    relations = {}
    for name in read_tables(sql):
        config = project.sources.get(name)
        if isinstance(config, SqlSourceConfig):
            relations[name] = SqlSource(name, config, project).relation_sql()
    return _rewrite_relations(sql, relations, "postgres")
