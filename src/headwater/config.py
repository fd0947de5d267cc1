"""The ``headwater.yml`` project file: its pydantic model, ``${ENV}`` substitution, and
``load_project``, which reports every problem at once with the line it sits on.

Why the YAML is composed by hand: ``yaml.safe_load`` throws away line numbers, and an
error a user cannot find is half an error. We compose the node tree, substitute
environment variables on the nodes (so a missing variable points at its line), record
the line of every key and value, then construct plain data for pydantic and map each
pydantic error location back to a line.

Environment values are read at load time only and never written back to the file.
Secrets are ``SecretStr``: they do not show in reprs, dumps or error messages.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from headwater.errors import ConfigError

PROJECT_FILE = "headwater.yml"
DEFAULT_STATE_URL = "sqlite:///.headwater/state.db"
DEFAULT_WAREHOUSE_URL = "duckdb:///.headwater/warehouse.duckdb"
WORK_DIR = ".headwater"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- destinations


class RateLimitOverride(_Strict):
    """Replaces the default budget of one Braze endpoint (e.g. a contract with more)."""

    limit: int = Field(gt=0, description="Requests allowed per window.")
    window_seconds: float = Field(gt=0, description="The window's length in seconds.")


class BrazeDestination(_Strict):
    type: Literal["braze"] = Field(
        default="braze", description="The kind of destination; Braze is the only one."
    )
    url: str = Field(
        description="The instance's REST endpoint (e.g. https://rest.iad-01.braze.com) or the sandbox's URL."
    )
    api_key: SecretStr = Field(
        description="A REST API key; write ${BRAZE_API_KEY} so it comes from the environment. Never stored or logged."
    )
    batch_policy: Literal["combined", "per_kind"] = Field(
        default="combined",
        description="combined: 75 objects per /users/track request in total (current contracts); per_kind: 75 of each kind (legacy).",
    )
    max_concurrency: int = Field(default=8, gt=0, le=256, description="Requests in flight at once.")
    timeout_seconds: float = Field(
        default=30.0, gt=0, description="Per request; a timeout is retried."
    )
    max_attempts: int = Field(
        default=6,
        gt=0,
        le=50,
        description="Tries per request on 429, 5xx and timeouts, the first included.",
    )
    retry_base_seconds: float = Field(
        default=0.5,
        gt=0,
        description="The first backoff; it doubles with jitter, and Braze's Retry-After is honoured.",
    )
    rate_limits: dict[str, RateLimitOverride] = Field(
        default_factory=dict,
        description="Budgets per Braze endpoint. Checked, but not used yet: the client learns the budget from Braze's X-RateLimit headers.",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("rate_limits")
    @classmethod
    def _rate_limits_not_used_yet(cls, value: dict) -> dict:
        if value:
            raise ValueError(
                "not supported yet: syncs and delivery would ignore it and use Braze's "
                "default limits; remove it"
            )
        return value


# --------------------------------------------------------------------------- sources


class _FileSourceBase(_Strict):
    """A file, a glob, or ``sftp://user@host:port/dir/*.csv``.

    SFTP credentials come from the environment through ``${VAR}``; ``known_hosts`` is a
    file in OpenSSH format (default: the user's ``~/.ssh/known_hosts``).
    """

    path: str = Field(
        description="A file, a glob (data/orders/*.parquet) relative to the project, or sftp://user@host:port/dir/*.csv."
    )
    password: SecretStr | None = Field(
        default=None, description="SFTP password, e.g. ${SFTP_PASSWORD}."
    )
    private_key: str | None = Field(
        default=None, description="SFTP private key file, e.g. keys/id_ed25519."
    )
    private_key_passphrase: SecretStr | None = Field(
        default=None, description="The private key's passphrase, if it has one."
    )
    known_hosts: str | None = Field(
        default=None,
        description="OpenSSH known_hosts file the SFTP server's host key is verified against (default ~/.ssh/known_hosts).",
    )

    @property
    def is_remote(self) -> bool:
        return self.path.startswith("sftp://")


class CsvSourceConfig(_FileSourceBase):
    type: Literal["csv"] = Field(description="CSV files.")
    delimiter: str = Field(
        default=",", min_length=1, max_length=1, description="The field delimiter, one character."
    )
    header: bool = Field(default=True, description="Whether the first line names the columns.")


class JsonSourceConfig(_FileSourceBase):
    """``json`` reads an array of objects or newline-delimited objects; ``ndjson`` only lines."""

    type: Literal["json", "ndjson"] = Field(
        description="json: an array of objects or one object per line; ndjson: one object per line."
    )


class ParquetSourceConfig(_FileSourceBase):
    type: Literal["parquet"] = Field(description="Parquet files.")


class SqlSourceConfig(_Strict):
    """A database reached through SQLAlchemy. Models over it run inside it.

    ``table`` or ``query`` make the source one relation, so a model may name the source
    itself (``select * from app_db``); without them, a model sets ``source: app_db`` and
    names the database's own tables.
    """

    type: Literal["sql"] = Field(description="A database reached through SQLAlchemy.")
    url: SecretStr = Field(
        description="SQLAlchemy URL (postgresql://..., sqlite:///...); a secret, e.g. ${APP_DATABASE_URL}."
    )
    table: str | None = Field(default=None, description="Make the source this one table.")
    query: str | None = Field(
        default=None, description="Make the source the result of this SELECT."
    )

    @model_validator(mode="after")
    def _one_relation(self) -> SqlSourceConfig:
        if self.table and self.query:
            raise ValueError("set either table or query, not both")
        return self


SourceConfig = Annotated[
    CsvSourceConfig | JsonSourceConfig | ParquetSourceConfig | SqlSourceConfig,
    Field(discriminator="type"),
]
FILE_SOURCE_TYPES = ("csv", "json", "ndjson", "parquet")

# --------------------------------------------------------------------------- models

ColumnType = Literal["string", "integer", "float", "boolean", "time", "array", "object"]


class ColumnSpec(_Strict):
    type: ColumnType = Field(
        default="string",
        description="The column's type; a value that does not fit rejects its row.",
    )
    required: bool = Field(default=False, description="Reject rows where the value is missing.")
    max_length: int | None = Field(
        default=None, gt=0, description="Strings only: reject longer values."
    )
    pattern: str | None = Field(
        default=None, description="Strings only: a regular expression the whole value must match."
    )
    split: str | None = Field(
        default=None, min_length=1, description="Arrays only: split text on this delimiter."
    )

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _options_fit_type(self) -> ColumnSpec:
        if (self.max_length is not None or self.pattern is not None) and self.type != "string":
            raise ValueError("max_length and pattern apply to string columns only")
        if self.split is not None and self.type != "array":
            raise ValueError("split applies to array columns only")
        return self


class ModelConfig(_Strict):
    sql: str = Field(
        min_length=1, description="One SELECT over sources (by name) and other models."
    )
    primary_key: str = Field(
        description="The declared column identifying a row; missing or shared keys reject the row."
    )
    columns: dict[str, ColumnSpec] = Field(
        description="Declared columns with their types and checks; only these are kept."
    )
    source: str | None = Field(
        default=None,
        description="Run the SQL inside this sql source's database (it then names the database's own tables).",
    )
    description: str | None = Field(default=None, description="What the model holds, for people.")


# --------------------------------------------------------------------------- syncs


class UserAlias(_Strict):
    name: str = Field(description="The column holding the alias name.")
    label: str = Field(description="The alias label, a literal such as crm.")


class SyncIdentifier(_Strict):
    """Exactly one way to find the Braze user: a column per identifier kind."""

    external_id: str | None = Field(
        default=None, description="The column holding the Braze external_id."
    )
    user_alias: UserAlias | None = Field(
        default=None, description="Find users by alias: a column for the name and a literal label."
    )
    braze_id: str | None = Field(
        default=None, description="The column holding the Braze id (never creates users)."
    )
    email: str | None = Field(default=None, description="The column holding the email address.")
    phone: str | None = Field(default=None, description="The column holding the phone number.")

    @model_validator(mode="after")
    def _exactly_one(self) -> SyncIdentifier:
        chosen = [k for k in type(self).model_fields if getattr(self, k) is not None]
        if len(chosen) != 1:
            raise ValueError(
                "set exactly one of external_id, user_alias, braze_id, email, phone"
                + (f" (got {', '.join(chosen)})" if chosen else "")
            )
        return self

    @property
    def kind(self) -> str:
        return next(k for k in type(self).model_fields if getattr(self, k) is not None)

    @property
    def columns(self) -> list[str]:
        if self.user_alias is not None:
            return [self.user_alias.name]
        return [getattr(self, self.kind)]


class EventSpec(_Strict):
    """Columns of an event; ``name`` is a literal event name, ``name_column`` a column."""

    name: str | None = Field(default=None, description="The event name, a literal.")
    name_column: str | None = Field(default=None, description="The column holding the event name.")
    time: str | None = Field(default=None, description="The column holding the event time.")
    properties: dict[str, str] = Field(
        default_factory=dict, description="Event property -> column."
    )

    @model_validator(mode="after")
    def _one_name(self) -> EventSpec:
        if (self.name is None) == (self.name_column is None):
            raise ValueError("set exactly one of name (a literal) or name_column")
        return self

    @property
    def columns(self) -> list[str]:
        cols = [self.name_column, self.time, *self.properties.values()]
        return [c for c in cols if c]


class PurchaseSpec(_Strict):
    """Columns of a purchase; ``currency`` is a literal code, ``currency_column`` a column."""

    product_id: str = Field(description="The column holding the product id.")
    price: str = Field(description="The column holding the price.")
    currency: str | None = Field(
        default=None, description="A literal 3-letter ISO 4217 code such as USD."
    )
    currency_column: str | None = Field(
        default=None, description="The column holding the currency code."
    )
    quantity: str | None = Field(default=None, description="The column holding the quantity.")
    time: str | None = Field(default=None, description="The column holding the purchase time.")
    properties: dict[str, str] = Field(
        default_factory=dict, description="Purchase property -> column."
    )

    @model_validator(mode="after")
    def _one_currency(self) -> PurchaseSpec:
        if (self.currency is None) == (self.currency_column is None):
            raise ValueError("set exactly one of currency (a literal) or currency_column")
        if self.currency is not None and not re.fullmatch(r"[A-Z]{3}", self.currency):
            raise ValueError("currency must be a 3-letter ISO 4217 code such as USD")
        return self

    @property
    def columns(self) -> list[str]:
        cols = [
            self.product_id,
            self.price,
            self.currency_column,
            self.quantity,
            self.time,
            *self.properties.values(),
        ]
        return [c for c in cols if c]


class Schedule(_Strict):
    cron: str = Field(
        description="A cron expression. Checked and shown by validate; Headwater does not run syncs on it yet."
    )
    timezone: str = Field(
        default="UTC",
        description="The time zone the cron expression is read in, e.g. Europe/Paris.",
    )

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        from croniter import croniter

        if not croniter.is_valid(value):
            raise ValueError(f"not a valid cron expression: {value!r}")
        return value

    @field_validator("timezone")
    @classmethod
    def _valid_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except Exception:
            raise ValueError(f"unknown time zone: {value!r}") from None
        return value


class SyncConfig(_Strict):
    model: str = Field(description="The model to send.")
    destination: str = Field(description="The destination to send it to.")
    type: Literal["attributes", "events", "purchases"] = Field(
        default="attributes",
        description="Send rows as user attributes, custom events or purchases.",
    )
    identifier: SyncIdentifier = Field(
        description="How to find the Braze user: exactly one identifier kind, by column."
    )
    mode: Literal["upsert", "update", "insert"] = Field(
        default="upsert",
        description="upsert: create or update users; update: existing users only; insert: new rows only.",
    )
    mapping: dict[str, str] = Field(
        default_factory=dict, description="Braze attribute -> model column (attributes syncs)."
    )
    event: EventSpec | None = Field(
        default=None, description="The event's name, time and properties (events syncs)."
    )
    purchase: PurchaseSpec | None = Field(
        default=None, description="The purchase's columns (purchases syncs)."
    )
    on_removed: Literal["keep", "unset", "delete"] = Field(
        default="keep",
        description="Rows that left the model: keep, unset (null the mapped attributes) or delete (the user).",
    )
    schedule: Schedule | None = Field(
        default=None, description="When the sync should run (see schedule)."
    )

    @model_validator(mode="after")
    def _shape_fits_type(self) -> SyncConfig:
        if self.type == "attributes" and not self.mapping:
            raise ValueError("an attributes sync needs a mapping of Braze fields to columns")
        if self.type == "events" and self.event is None:
            raise ValueError("an events sync needs an event block (name, time, properties)")
        if self.type == "purchases" and self.purchase is None:
            raise ValueError("a purchases sync needs a purchase block (product_id, price, ...)")
        if self.type != "events" and self.event is not None:
            raise ValueError("event applies to events syncs only")
        if self.type != "purchases" and self.purchase is not None:
            raise ValueError("purchase applies to purchases syncs only")
        if self.type != "attributes" and self.on_removed != "keep":
            raise ValueError("events and purchases cannot be removed; on_removed must be keep")
        return self

    @property
    def columns(self) -> list[str]:
        """Every model column this sync reads, identifier first."""
        cols = [*self.identifier.columns, *self.mapping.values()]
        if self.event:
            cols += self.event.columns
        if self.purchase:
            cols += self.purchase.columns
        return list(dict.fromkeys(cols))


# --------------------------------------------------------------------------- gateway


class GatewayDelivery(_Strict):
    """How ``serve``'s delivery workers drain the outbox into Braze."""

    max_attempts: int = Field(
        default=8,
        gt=0,
        le=100,
        description="Failed tries before an object is parked in the dead-letter queue.",
    )
    lease_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How long a delivery claim lasts before another worker may take it over.",
    )
    linger_seconds: float = Field(
        default=0.05,
        ge=0,
        le=10,
        description="How long to wait for a batch to fill before sending.",
    )
    retry_base_seconds: float = Field(
        default=1.0,
        gt=0,
        description="The first backoff; it doubles with jitter up to retry_max_seconds.",
    )
    retry_max_seconds: float = Field(default=300.0, gt=0, description="The longest backoff.")
    identity_cache_size: int = Field(
        default=100_000, ge=0, description="Email -> Braze user lookups kept in memory."
    )


class GatewayConfig(_Strict):
    """``/users/track`` traffic and the delivery behind it (the streams have their own)."""

    destination: str | None = Field(
        default=None,
        description="Where /users/track traffic goes (a key's --destination wins); default: braze, else the first destination.",
    )
    dedupe_attributes: bool = Field(
        default=True,
        description="Drop attributes whose value equals the last one Braze accepted for the user (/users/track traffic).",
    )
    dedupe_events: bool = Field(
        default=True,
        description="Deliver an event re-posted within the duplicate window once (/users/track traffic).",
    )
    duplicate_window_hours: float = Field(
        default=24.0,
        gt=0,
        le=24 * 30,
        description="How long a re-posted event counts as a duplicate, for every stream.",
    )
    delivery: GatewayDelivery = Field(
        default_factory=GatewayDelivery,
        description="How serve's delivery workers drain the outbox.",
    )
    shutdown_seconds: float = Field(
        default=25.0,
        gt=0,
        le=3600,
        description="On SIGTERM/SIGINT, serve answers what it is serving, lets delivery finish, hands the rest back and exits 0 within this bound.",
    )


# --------------------------------------------------------------------------- project


class Project(_Strict):
    state: str = Field(
        default=DEFAULT_STATE_URL,
        description="Where runs, snapshots, keys and the outbox live: sqlite:///path or postgresql://...",
    )
    warehouse: str = Field(
        default=DEFAULT_WAREHOUSE_URL,
        description="The DuckDB database file models run in (duckdb:///path).",
    )
    destinations: dict[str, BrazeDestination] = Field(
        default_factory=dict, description="Braze workspaces to send to, by name."
    )
    sources: dict[str, SourceConfig] = Field(
        default_factory=dict, description="Where rows come from, by name."
    )
    models: dict[str, ModelConfig] = Field(
        default_factory=dict, description="SELECTs over sources with typed columns, by name."
    )
    syncs: dict[str, SyncConfig] = Field(
        default_factory=dict, description="Models sent to destinations, by name."
    )
    streams: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Partner webhooks received by serve, by name; checked when serve starts.",
    )
    gateway: GatewayConfig = Field(
        default_factory=GatewayConfig,
        description="The gateway's switches and the delivery settings.",
    )

    _root: Path = PrivateAttr(default_factory=Path.cwd)

    @field_validator("warehouse")
    @classmethod
    def _duckdb_warehouse(cls, value: str) -> str:
        if not value.startswith("duckdb:///"):
            raise ValueError(
                f"only duckdb:/// warehouses are supported, got {redact_url(value)!r}; a model "
                "over a PostgreSQL database runs inside it (set `source:` on the model)"
            )
        return value

    def __repr_args__(self):
        # state/warehouse URLs may carry a database password; a repr must not show it.
        # Streams stay loose dicts here, so hide anything in them that looks secret.
        for name, value in super().__repr_args__():
            if name in ("state", "warehouse"):
                value = redact_url(value)
            elif name == "streams":
                value = _redact_secrets(value)
            yield name, value

    _file: Path | None = PrivateAttr(default=None)

    @property
    def root(self) -> Path:
        """The project directory; relative paths in the file are relative to it."""
        return self._root

    @property
    def file(self) -> Path | None:
        return self._file

    @property
    def work_dir(self) -> Path:
        """``.headwater/`` inside the project: state, warehouse, SFTP cache."""
        return self._root / WORK_DIR

    def resolve_path(self, path: str | Path) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else self._root / p

    def resolve_url(self, url: str) -> str:
        """Make a relative ``sqlite:///x`` or ``duckdb:///x`` URL absolute under the project."""
        for scheme in ("sqlite:///", "duckdb:///"):
            if url.startswith(scheme):
                rest = url[len(scheme) :]
                if rest and not rest.startswith((":memory:", "/")):
                    return scheme + str(self.resolve_path(rest))
        return url

    @property
    def state_url(self) -> str:
        return self.resolve_url(self.state)

    @property
    def warehouse_url(self) -> str:
        return self.resolve_url(self.warehouse)

    @property
    def warehouse_path(self) -> str:
        """The DuckDB database file (or ``:memory:``) file models run in."""
        url = self.warehouse_url
        if not url.startswith("duckdb:///"):
            raise ConfigError(
                f"warehouse: only duckdb:/// URLs are supported, got {redact_url(url)!r}"
            )
        return url.removeprefix("duckdb:///") or ":memory:"


_SECRET_KEY = re.compile(r"pass|secret|token|key|auth", re.IGNORECASE)


def _redact_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: "**********"
            if isinstance(k, str) and _SECRET_KEY.search(k) and not isinstance(v, dict)
            else _redact_secrets(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redact_secrets(v) for v in value]
    return value


def redact_url(url: str) -> str:
    """``scheme://user:secret@host`` -> ``scheme://user:***@host``."""
    # The password may hold a "/" (psycopg takes it): mask up to the last "@".
    return re.sub(r"^([a-zA-Z][\w+.-]*://[^:/@]*:)[^@]*@", r"\1***@", url)


# --------------------------------------------------------------------------- loading

_ENV_PATTERN = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

Loc = tuple[str | int, ...]


class _Document:
    """Plain data constructed from YAML nodes, plus the line of every location."""

    def __init__(self, file_label: str) -> None:
        self.file_label = file_label
        self.lines: dict[Loc, int] = {}
        self.problems: list[str] = []
        self._loader = yaml.SafeLoader("")

    def problem(self, loc: Loc, message: str) -> None:
        line = self.line_of(loc)
        where = ".".join(str(p) for p in loc)
        prefix = f"{self.file_label}:{line}: " if line else f"{self.file_label}: "
        self.problems.append(f"{prefix}{where + ': ' if where else ''}{message}")

    def line_of(self, loc: Loc) -> int | None:
        for end in range(len(loc), -1, -1):
            line = self.lines.get(tuple(loc[:end]))
            if line:
                return line
        return None

    def build(self, node: yaml.Node, loc: Loc, _path: frozenset[int] = frozenset()) -> Any:
        self.lines.setdefault(loc, node.start_mark.line + 1)
        if id(node) in _path:
            self.problem(loc, "a YAML alias refers to itself")
            return None
        _path = _path | {id(node)}
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self.build(key_node, (*loc, "<key>"), _path)
                if not isinstance(key, str | int | float | bool):
                    self.problem(loc, "keys must be plain strings")
                    continue
                if key in out:
                    self.lines[(*loc, key)] = key_node.start_mark.line + 1
                    self.problem((*loc, key), "duplicate key")
                self.lines[(*loc, key)] = key_node.start_mark.line + 1
                out[key] = self.build(value_node, (*loc, key), _path)
            self.lines.pop((*loc, "<key>"), None)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*loc, i), _path) for i, item in enumerate(node.value)]
        return self._scalar(node, loc)

    def _scalar(self, node: yaml.ScalarNode, loc: Loc) -> Any:
        if node.tag == "tag:yaml.org,2002:str" and "$" in node.value:
            value = self._substitute(node.value, loc)
            return value
        return self._loader.construct_object(node, deep=True)

    def _substitute(self, text: str, loc: Loc) -> str:
        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            value = os.environ.get(name)
            if value is None or (value == "" and default is not None):
                if default is not None:
                    return default
                self.problem(loc, f"environment variable {name} is not set")
                return ""
            return value

        return _ENV_PATTERN.sub(replace, text)


def _pydantic_loc(data: Any, loc: tuple[str | int, ...], error_type: str) -> Loc:
    """Drop the parts of a pydantic location that are not in the YAML (union tags)."""
    out: list[str | int] = []
    current = data
    for i, part in enumerate(loc):
        if (
            isinstance(current, dict)
            and part in current
            or isinstance(current, list)
            and isinstance(part, int)
            and part < len(current)
        ):
            current = current[part]
            out.append(part)
        elif i == len(loc) - 1 and error_type == "missing" and isinstance(part, str):
            out.append(part)  # a missing field: name it, point at its parent's line
        # else: a discriminator tag or validator name -- not a place in the file
    return tuple(out)


def _message(error: dict[str, Any]) -> str:
    msg = error["msg"]
    if error["type"] == "missing":
        return "field required"
    if error["type"] == "extra_forbidden":
        return "unknown field (not allowed here)"
    if error["type"] == "union_tag_invalid":
        return f"unknown type; expected one of {error['ctx']['expected_tags']}"
    if error["type"] == "union_tag_not_found":
        return "field required: type"
    msg = msg.removeprefix("Value error, ")
    return msg[:1].lower() + msg[1:]


Report = Callable[[Loc, str], None]
ProjectCheck = Callable[[dict[str, Any], Report], None]
"""A check of one part of the raw project file that another package owns (streams, Braze
field names); it reports each problem at its location, and ``parse_project`` adds the line."""


def located_errors(exc: ValidationError, data: Any) -> list[tuple[Loc, str]]:
    """A pydantic error's problems as (location in ``data``, message), the way this file
    reports its own, for a check that validates part of the file with its own model."""
    return [
        (_pydantic_loc(data, error["loc"], error["type"]), _message(error))
        for error in exc.errors(include_input=False, include_url=False)
    ]


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
NAMED_SECTIONS = ("destinations", "sources", "models", "syncs", "streams")


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a source, model, sync, stream or destination (else None)."""
    if NAME_PATTERN.fullmatch(name):
        return None
    return (
        f"{name!r} is not a valid name: use letters, digits, _ and -, start with a letter, "
        "at most 40 characters"
    )


def _check_names(raw: dict[str, Any], doc: _Document) -> None:
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


def _cross_check(raw: dict[str, Any], doc: _Document) -> None:
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
        sql = model.get("sql")
        if isinstance(sql, str) and source is None:
            tables = _table_names(sql)
            if tables == {"<not a select>"}:
                doc.problem(("models", name, "sql"), "must be a single SELECT statement")
            elif tables:
                for table in sorted(tables - set(sources) - set(models)):
                    doc.problem(
                        ("models", name, "sql"),
                        f"reads {table!r}, which is not a source"
                        + (f" (sources: {', '.join(sorted(sources))})" if sources else ""),
                    )

    gateway = section("gateway")
    if gateway:
        dest = gateway.get("destination")
        if isinstance(dest, str) and dest not in destinations:
            doc.problem(("gateway", "destination"), f"no destination named {dest!r}")

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
        model = models[model_name]
        declared = model.get("columns") if isinstance(model, dict) else None
        if not isinstance(declared, dict):
            continue
        for loc, column in _sync_column_refs(sync):
            if isinstance(column, str) and column not in declared:
                doc.problem(
                    ("syncs", name, *loc),
                    f"column {column!r} is not declared in model {model_name!r}",
                )


def _check_removals(raw: dict[str, Any], doc: _Document) -> None:
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


def parse_project(
    text: str,
    *,
    file_label: str = PROJECT_FILE,
    root: Path | None = None,
    checks: Iterable[ProjectCheck] = (),
) -> Project:
    """Validate project-file text. Raises ConfigError carrying every problem found, those
    of ``checks`` included."""
    doc = _Document(file_label)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        raise ConfigError(
            [f"{file_label}{line}: not valid YAML: {exc.problem or exc.context}"]
        ) from None
    raw = {} if node is None else doc.build(node, ())
    if not isinstance(raw, dict):
        raise ConfigError([f"{file_label}:1: the project file must be a mapping of sections"])

    project: Project | None = None
    try:
        project = Project.model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors(include_input=False, include_url=False):
            doc.problem(_pydantic_loc(raw, error["loc"], error["type"]), _message(error))
    _check_names(raw, doc)
    _cross_check(raw, doc)
    _check_removals(raw, doc)
    for check in checks:
        check(raw, doc.problem)

    if doc.problems or project is None:
        raise ConfigError(_sorted_by_line(doc.problems))
    project._root = (root or Path.cwd()).resolve()
    return project


def _sorted_by_line(problems: list[str]) -> list[str]:
    def key(p: str) -> tuple[int, str]:
        m = re.match(r"[^:]+:(\d+):", p)
        return (int(m.group(1)) if m else 0, p)

    return sorted(dict.fromkeys(problems), key=key)


def find_project_file(path: str | Path | None = None) -> Path:
    """``path`` may be the project directory or the file itself (default: the cwd)."""
    p = Path(path) if path is not None else Path.cwd()
    if p.is_dir():
        p = p / PROJECT_FILE
    return p


def load_project(path: str | Path | None = None, *, checks: Iterable[ProjectCheck] = ()) -> Project:
    """Read, substitute ``${ENV}``, validate and cross-check a project file."""
    file = find_project_file(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{file}: no project file here (run `headwater init DIR`)"]) from None
    except OSError as exc:
        raise ConfigError([f"{file}: cannot read: {exc.strerror}"]) from None
    project = parse_project(text, file_label=file.name, root=file.parent, checks=checks)
    project._file = file.resolve()
    return project


__all__ = [
    "BrazeDestination",
    "ColumnSpec",
    "CsvSourceConfig",
    "EventSpec",
    "JsonSourceConfig",
    "ModelConfig",
    "ParquetSourceConfig",
    "Project",
    "PurchaseSpec",
    "Schedule",
    "SqlSourceConfig",
    "SyncConfig",
    "SyncIdentifier",
    "load_project",
    "located_errors",
    "name_problem",
    "parse_project",
]
