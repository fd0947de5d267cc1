"""``currents:``: Braze Currents (custom HTTP connector) receivers that ``serve`` runs at
``/currents/<name>``, each with its bearer token, and optionally forwarding what it receives
to another HTTP endpoint; ``landing:``, where received events land as Parquet files.

One receiver per Braze workspace (or per connector) keeps tokens apart and lands each
workspace's events under its own directory."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, StringConstraints

from headwater.config.base import DEFAULT_LANDING_DIR  # noqa: F401  (one default, re-exported)
from headwater.config.base import Strict as _Strict

RECEIVER_NAME = r"^[A-Za-z][A-Za-z0-9_-]{0,39}$"  # a URL part and a directory name


class CurrentsForward(_Strict):
    """Where received events go next (an Optimizely-style relay), through the outbox."""

    url: str = Field(
        pattern=r"^https?://",
        description="The HTTP endpoint that gets each batch as Braze sends it: POST "
        '{"events": [...]} with Braze-Currents-Version: 1.',
    )
    token: SecretStr | None = Field(
        default=None,
        description="Bearer token sent to url; write ${VAR} so it comes from the environment.",
    )
    batch_size: int = Field(
        default=100, ge=1, le=100, description="Events per forwarded POST (Currents sends 100)."
    )
    max_attempts: int = Field(
        default=8,
        ge=1,
        le=100,
        description="Failed tries before an event is parked in the dead-letter queue.",
    )
    retry_base_seconds: float = Field(
        default=1.0, gt=0, description="The first backoff; it doubles with jitter."
    )
    retry_max_seconds: float = Field(default=300.0, gt=0, description="The longest backoff.")
    timeout_seconds: float = Field(
        default=30.0, gt=0, le=600, description="How long one forwarded POST may take."
    )


class CurrentsReceiver(_Strict):
    """One ``/currents/<name>`` endpoint: point Braze's custom HTTP Currents connector at
    it with this token."""

    token: SecretStr = Field(
        description="The bearer token Braze presents (the connector's 'Bearer token'); write "
        "${CURRENTS_TOKEN} so it comes from the environment. Checked on every batch."
    )
    max_body_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=1024 * 1024,
        le=256 * 1024 * 1024,
        description="A larger POST is answered 413, so Braze splits the batch.",
    )
    forward: CurrentsForward | None = Field(
        default=None, description="Also relay received events to another HTTP endpoint."
    )
    dedupe_days: float = Field(
        default=8.0,
        gt=0,
        le=366,
        description="How long an event id is remembered so a re-sent event lands once "
        "(Braze retries for days and keeps queued events up to 7).",
    )


CurrentsName = Annotated[str, StringConstraints(pattern=RECEIVER_NAME)]
CurrentsSection = dict[CurrentsName, CurrentsReceiver]
