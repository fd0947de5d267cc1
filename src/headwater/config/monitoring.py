"""``metrics:`` and ``inspector:``: who may read serve's figures, and how much of partners'
payloads the event inspector keeps in the state store (and which field names it hides)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from headwater.config.base import Strict as _Strict


class MetricsConfig(_Strict):
    """``GET /metrics`` on serve: it names partner keys and volumes, so it needs a token."""

    token: SecretStr | None = Field(
        default=None,
        description="The bearer token Prometheus presents; write ${HEADWATER_METRICS_TOKEN} so "
        "it comes from the environment. Without one, /metrics answers 403.",
    )


class InspectorConfig(_Strict):
    """The event inspector's size bound and the field names it redacts."""

    redact: list[str] = Field(
        default_factory=list,
        description="More words that mark a field as secret (matched inside field names, case "
        "and _ - . ignored), added to the built-in list.",
    )
    max_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=64 * 1024,
        description="Bytes of payloads the inspector keeps for all streams together; past it "
        "the oldest go.",
    )
    payload_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        le=16 * 1024 * 1024,
        description="A payload larger than this is kept cut to about this size, with markers "
        "saying how much was left out.",
    )
