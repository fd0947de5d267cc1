"""The whole ``headwater.yml``: one model holding every section, streams included, and the
paths and URLs resolved against the project directory."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, PrivateAttr, field_validator

from headwater.config.audiences import AudienceConfig, AudienceDefaults
from headwater.config.base import (
    DEFAULT_LANDING_DIR,
    DEFAULT_STATE_URL,
    DEFAULT_WAREHOUSE_URL,
    WORK_DIR,
    redact_url,
)
from headwater.config.base import (
    Strict as _Strict,
)
from headwater.config.console import ConsoleConfig
from headwater.config.currents import CurrentsSection
from headwater.config.destinations import BrazeDestination
from headwater.config.exports import ExportsConfig
from headwater.config.gateway import GatewayConfig
from headwater.config.models import ModelConfig
from headwater.config.monitoring import InspectorConfig, MetricsConfig
from headwater.config.sources import SourceConfig
from headwater.config.streams import StreamConfig
from headwater.config.syncs import SyncConfig
from headwater.config.triggers import TriggerConfig
from headwater.errors import ConfigError


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
    streams: dict[str, StreamConfig] = Field(
        default_factory=dict, description="Partner webhooks received by serve, by name."
    )
    triggers: dict[str, TriggerConfig] = Field(
        default_factory=dict,
        description="Campaigns, canvases or profile updates sent when a person enters an "
        "audience or a stream event matches, by name.",
    )
    audiences: dict[str, AudienceConfig] = Field(
        default_factory=dict,
        description="SQL conditions over models, synced as boolean attributes per split, by name.",
    )
    audience_defaults: AudienceDefaults = Field(
        default_factory=AudienceDefaults,
        description="The attribute name template and exit value every audience starts from.",
    )
    gateway: GatewayConfig = Field(
        default_factory=GatewayConfig,
        description="The gateway's switches and the delivery settings.",
    )
    metrics: MetricsConfig = Field(
        default_factory=MetricsConfig, description="Who may read serve's /metrics."
    )
    console: ConsoleConfig = Field(
        default_factory=ConsoleConfig, description="The web console's login cookies."
    )
    inspector: InspectorConfig = Field(
        default_factory=InspectorConfig,
        description="The event inspector's memory bound and redacted field names.",
    )
    exports: ExportsConfig = Field(
        default_factory=ExportsConfig,
        description="What Headwater pulls back out of Braze: segment exports.",
    )
    currents: CurrentsSection = Field(
        default_factory=dict,
        description="Braze Currents receivers serve runs at /currents/<name>, by name.",
    )
    landing: str = Field(
        default=DEFAULT_LANDING_DIR,
        description="The directory exports land in as Parquet files (segments under segments/, "
        "Currents events under currents/<receiver>/<event_type>/), read by DuckDB while serve writes.",
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
        # (Stream secrets are SecretStr, hidden by their own repr.)
        for name, value in super().__repr_args__():
            if name in ("state", "warehouse"):
                value = redact_url(value)
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
    def landing_path(self) -> Path:
        """The landing directory, absolute."""
        return self.resolve_path(self.landing)

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
