"""What ``serve`` runs with, taken from the project file (or built directly by tests and
the benchmark): the state store, destinations, streams and the delivery tunables."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import SecretStr

from headwater.config import GatewayDelivery
from headwater.errors import ConfigError
from headwater.streams.config import StreamConfig, parse_streams

DEFAULT_DESTINATION = "braze"


@dataclass
class DestinationSettings:
    name: str
    url: str
    api_key: SecretStr
    batch_policy: str = "combined"
    max_concurrency: int = 8
    timeout_seconds: float = 30.0

    def __repr__(self) -> str:
        return f"DestinationSettings(name={self.name!r}, url={self.url!r}, api_key='**********')"


_DELIVERY = GatewayDelivery()  # the project file's defaults (`gateway.delivery`)


@dataclass
class DeliverySettings:
    lease_seconds: float = _DELIVERY.lease_seconds
    max_attempts: int = _DELIVERY.max_attempts  # failures before an object is parked
    linger_seconds: float = _DELIVERY.linger_seconds  # wait for a batch to fill before sending
    poll_seconds: float = 0.5  # look for rows other processes committed, or retries due
    claim_size: int = 75 * 8  # rows leased per round (several requests sent concurrently)
    retry_base_seconds: float = _DELIVERY.retry_base_seconds
    retry_max_seconds: float = _DELIVERY.retry_max_seconds
    identity_cache_size: int = _DELIVERY.identity_cache_size


@dataclass
class ServeSettings:
    state_url: str
    destinations: dict[str, DestinationSettings]
    streams: dict[str, StreamConfig] = field(default_factory=dict)
    gateway_destination: str | None = None  # default: "braze", else the first destination
    gateway_dedupe_attributes: bool = True
    gateway_dedupe_events: bool = True
    seen_window_seconds: float = 24 * 3600.0
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    run_workers: bool = True
    shutdown_seconds: float = 25.0  # gateway.shutdown_seconds: the bound on a graceful stop

    def default_destination(self) -> str:
        if self.gateway_destination:
            return self.gateway_destination
        if DEFAULT_DESTINATION in self.destinations:
            return DEFAULT_DESTINATION
        if self.destinations:
            return next(iter(self.destinations))
        raise ConfigError("destinations: serve needs at least one Braze destination")

    @classmethod
    def from_project(cls, project) -> ServeSettings:
        """Build from a loaded ``headwater.config.Project``."""
        destinations = {
            name: DestinationSettings(
                name=name,
                url=dest.url,
                api_key=dest.api_key,
                batch_policy=str(dest.batch_policy),
                max_concurrency=dest.max_concurrency,
                timeout_seconds=dest.timeout_seconds,
            )
            for name, dest in project.destinations.items()
        }
        streams = parse_streams(project.streams, set(destinations))
        gateway = project.gateway
        return cls(
            state_url=project.state_url,
            destinations=destinations,
            streams=streams,
            gateway_destination=gateway.destination,
            gateway_dedupe_attributes=gateway.dedupe_attributes,
            gateway_dedupe_events=gateway.dedupe_events,
            seen_window_seconds=gateway.duplicate_window_hours * 3600.0,
            delivery=DeliverySettings(**gateway.delivery.model_dump()),
            shutdown_seconds=gateway.shutdown_seconds,
        )
