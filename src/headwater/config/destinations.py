"""``destinations:``: the Braze workspaces a project sends to."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, SecretStr, field_validator

from headwater.config.base import Strict as _Strict


class RateLimitOverride(_Strict):
    """Replaces Braze's documented budget of one rate bucket (a contract with more or less)."""

    limit: int = Field(
        gt=0,
        le=1_000_000_000,
        description="Requests allowed per window, for every process sending to this destination together.",
    )
    window_seconds: float = Field(
        gt=0,
        le=86_400,
        description="The window's length in seconds (at most a day); windows start on clock boundaries, as Braze's do.",
    )


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
    max_concurrency: int = Field(
        default=200,
        gt=0,
        le=1000,
        description="The most requests in flight at once. The client finds its own level below it: it grows while answers are fast and the rate budget has room, and halves on a 429, a 5xx or slower answers.",
    )
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
        description="Budgets per Braze rate bucket (users.track, users.export.ids, users.identity, ...), replacing Braze's documented defaults. Shared by every sync and the gateway's delivery in a process, and by every process when the state is PostgreSQL.",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")
