"""What ``serve`` runs with, built from the project model (or directly by tests and the
benchmark). Nothing here re-declares a setting of the project file: a destination is the
file's ``BrazeDestination`` with its name, delivery is the file's ``gateway.delivery`` with
the two knobs the file does not expose, and the gateway's switches are read from the file's
``GatewayConfig``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import Field, SecretStr

from headwater.config import (
    BrazeDestination,
    ConsoleConfig,
    GatewayConfig,
    GatewayDelivery,
    InspectorConfig,
    StreamConfig,
)
from headwater.config.currents import DEFAULT_LANDING_DIR, CurrentsReceiver
from headwater.config.triggers import TriggerConfig
from headwater.errors import ConfigError

DEFAULT_DESTINATION = "braze"


class DestinationSettings(BrazeDestination):
    """A ``destinations:`` entry and its name: what one delivery worker sends to."""

    name: str


class DeliverySettings(GatewayDelivery):
    """``gateway.delivery`` plus how often a worker looks and how much it takes at once,
    which are tuned by the code's measurements, not per project."""

    poll_seconds: float = Field(default=0.5, gt=0)  # rows other processes committed, retries due
    claim_size: int = Field(default=75 * 8, gt=0)  # rows leased per round (several requests)


@dataclass
class ServeSettings:
    state_url: str
    destinations: dict[str, DestinationSettings]
    streams: dict[str, StreamConfig] = field(default_factory=dict)
    gateway: GatewayConfig = field(default_factory=GatewayConfig)
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    run_workers: bool = True
    shutdown_seconds: float = 25.0  # gateway.shutdown_seconds: the bound on a graceful stop
    metrics_token: SecretStr | None = None  # None: /metrics answers 403
    inspector: InspectorConfig = field(default_factory=InspectorConfig)
    console: ConsoleConfig = field(default_factory=ConsoleConfig)
    currents: dict[str, CurrentsReceiver] = field(default_factory=dict)
    landing_dir: Path = field(default_factory=lambda: Path(DEFAULT_LANDING_DIR))
    triggers: dict[str, TriggerConfig] = field(default_factory=dict)  # stream ones fire in serve

    @property
    def forward_destinations(self) -> list[str]:
        """Outbox destinations that are not Braze workspaces: the Currents forwards, each
        drained by its own worker (so the unrouted sweeper must leave them alone)."""
        return [f"currents:{name}" for name, r in self.currents.items() if r.forward]

    @property
    def gateway_destination(self) -> str | None:
        return self.gateway.destination

    @property
    def gateway_dedupe_attributes(self) -> bool:
        return self.gateway.dedupe_attributes

    @property
    def gateway_dedupe_events(self) -> bool:
        return self.gateway.dedupe_events

    @property
    def seen_window_seconds(self) -> float:
        return self.gateway.duplicate_window_hours * 3600.0

    def default_destination(self) -> str:
        if self.gateway.destination:
            return self.gateway.destination
        if DEFAULT_DESTINATION in self.destinations:
            return DEFAULT_DESTINATION
        if self.destinations:
            return next(iter(self.destinations))
        raise ConfigError("destinations: serve needs at least one Braze destination")

    @classmethod
    def from_project(cls, project) -> ServeSettings:
        """Build from a loaded ``headwater.config.Project`` (streams and references were
        validated with it, each problem at its line)."""
        return cls(
            state_url=project.state_url,
            destinations={
                name: DestinationSettings(name=name, **dest.model_dump())
                for name, dest in project.destinations.items()
            },
            streams=dict(project.streams),
            gateway=project.gateway,
            delivery=DeliverySettings(**project.gateway.delivery.model_dump()),
            shutdown_seconds=project.gateway.shutdown_seconds,
            metrics_token=project.metrics.token,
            inspector=project.inspector,
            currents=dict(project.currents),
            landing_dir=project.landing_path,
            console=project.console,
            triggers=dict(project.triggers),
        )
