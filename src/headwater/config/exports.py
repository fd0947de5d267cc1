"""``exports:``: what Headwater pulls back out of Braze into the landing directory.

``segments:`` lands Braze segments as tables (``headwater export segments``): which
destination, which segments, which profile fields, and when serve runs it. Field names are
checked against Braze's list by ``headwater.exports.segments_checks`` (the config layer
does not know Braze's contract)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from headwater.config.base import Strict as _Strict
from headwater.config.syncs import Schedule

DEFAULT_POLL_TIMEOUT_MINUTES = 120.0


class FieldChanges(_Strict):
    """Changes to Headwater's default ``fields_to_export`` (see the exports guide)."""

    add: list[str] = Field(
        default_factory=list,
        description="Braze profile fields to export on top of the defaults, e.g. custom_events, devices.",
    )
    remove: list[str] = Field(
        default_factory=list,
        description="Default fields not to export, e.g. phone. braze_id cannot be removed: members are keyed by it.",
    )


class SegmentExportConfig(_Strict):
    destination: str = Field(description="The Braze destination whose segments are exported.")
    segments: Literal["all"] | list[str] = Field(
        default="all",
        description="all (every segment /segments/list returns), or segment names or ids.",
    )
    fields_to_export: FieldChanges = Field(
        default_factory=FieldChanges,
        description="Additions to and removals from the default profile fields.",
    )
    callback_url: str | None = Field(
        default=None,
        description="Sent to Braze as callback_endpoint (it POSTs there when the files are ready). Headwater polls the download URL either way.",
    )
    callback_base_url: str | None = Field(
        default=None,
        description="serve's public address (e.g. https://hub.example.com): each export gives Braze <this>/exports/segments/callback/<random token> and serve's route wakes the waiting export at once. Polling stays the fallback.",
    )
    poll_timeout_minutes: float = Field(
        default=DEFAULT_POLL_TIMEOUT_MINUTES,
        gt=0,
        le=24 * 60,
        description="How long to wait for Braze to prepare one segment's files (20 million users can take an hour).",
    )
    schedule: Schedule | None = Field(
        default=None,
        description="When headwater serve runs the export (job segments): every, cron + timezone, or after another job.",
    )

    @field_validator("segments", mode="before")
    @classmethod
    def _one_name_is_a_list(cls, value: object) -> object:
        return [value] if isinstance(value, str) and value != "all" else value

    @field_validator("segments")
    @classmethod
    def _some_segments(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError("name at least one segment, or write all")
        return value

    @field_validator("callback_url", "callback_base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value


class ExportsConfig(_Strict):
    segments: SegmentExportConfig | None = Field(
        default=None, description="Braze segments landed as tables (headwater export segments)."
    )
