"""``gateway:``: ``/users/track`` traffic and the delivery workers behind it."""

from __future__ import annotations

from pydantic import Field

from headwater.config.base import Strict as _Strict


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
