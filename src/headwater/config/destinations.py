"""``destinations:``: the Braze workspaces a project sends to."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, SecretStr, field_validator

from headwater.config.base import Strict as _Strict


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
