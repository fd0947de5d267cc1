"""The model of one ``triggers:`` entry in headwater.yml: when a trigger fires (a person
entering an audience, or a stream event matching a filter) and what it sends (a Braze
campaign, a canvas, or a profile update only), with up to 20 Liquid-rendered properties.

The condition is written under ``when:``, not ``on:``: YAML 1.1 (PyYAML) reads a bare
``on`` key as the boolean ``true``.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from headwater.config.base import Strict as _Strict

MAX_TRIGGER_PROPERTIES = 20
Scalar = str | int | float | bool | None


class TriggerWhen(_Strict):
    """An audience entry (``audience``, optionally ``split``) or a stream event
    (``stream``, optionally ``event`` and ``where``): exactly one of the two."""

    audience: str | None = Field(default=None, description="Fire when a person enters it.")
    split: str | None = Field(
        default=None, description="Only entries into this split of the audience."
    )
    stream: str | None = Field(
        default=None, description="Fire on events delivered from this stream (or 'gateway')."
    )
    event: str | None = Field(default=None, description="Only events with this name.")
    where: dict[str, Scalar] = Field(
        default_factory=dict,
        description="Event properties that must equal these values (dotted names reach "
        "nested properties).",
    )

    @model_validator(mode="after")
    def _one_source(self) -> TriggerWhen:
        if (self.audience is None) == (self.stream is None):
            raise ValueError("give exactly one of 'audience' or 'stream'")
        if self.audience is not None and (self.event or self.where):
            raise ValueError("'event' and 'where' apply to stream triggers only")
        if self.stream is not None and self.split is not None:
            raise ValueError("'split' applies to audience triggers only")
        return self


class TriggerConfig(_Strict):
    when: TriggerWhen = Field(description="What fires the trigger.")
    destination: str = Field(default="braze", description="The Braze destination to send to.")
    campaign_id: str | None = Field(
        default=None, description="An API-triggered campaign to send (/campaigns/trigger/send)."
    )
    canvas_id: str | None = Field(
        default=None, description="An API-triggered canvas to send (/canvas/trigger/send)."
    )
    profile_only: bool = Field(
        default=False,
        description="Send nothing: write the rendered properties to the profile as attributes.",
    )
    properties: dict[str, str] = Field(
        default_factory=dict,
        description="At most 20 trigger_properties / canvas_entry_properties, each a Liquid "
        "template over the person's record ({{ customer.column }}).",
    )
    send_to_existing_only: bool = Field(
        default=True,
        description="Message only users Braze already has (false creates them from the "
        "properties as attributes; not possible with user aliases).",
    )

    @model_validator(mode="before")
    @classmethod
    def _not_on(cls, data: Any) -> Any:
        if isinstance(data, dict) and True in data:
            raise ValueError("write the condition under 'when:' (YAML reads a bare 'on' as true)")
        return data

    @field_validator("properties")
    @classmethod
    def _few_and_valid(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_TRIGGER_PROPERTIES:
            raise ValueError(f"at most {MAX_TRIGGER_PROPERTIES} properties, got {len(value)}")
        from liquid.exceptions import LiquidError

        from headwater.config.templates import compile_template

        for name, template in value.items():
            try:
                compile_template(template)
            except LiquidError as exc:
                raise ValueError(
                    f"property {name!r}: template {template!r}: {str(exc).splitlines()[0]}"
                ) from None
        return value

    @model_validator(mode="after")
    def _one_action(self) -> TriggerConfig:
        actions = [self.campaign_id is not None, self.canvas_id is not None, self.profile_only]
        if sum(actions) != 1:
            raise ValueError(
                "give exactly one of 'campaign_id', 'canvas_id' or 'profile_only: true'"
            )
        if self.profile_only and not self.properties:
            raise ValueError("'profile_only' needs 'properties' (the attributes to write)")
        return self

    @property
    def action(self) -> str:
        """campaign | canvas | profile"""
        if self.campaign_id is not None:
            return "campaign"
        return "canvas" if self.canvas_id is not None else "profile"


def describe(trigger: TriggerConfig) -> dict[str, Any]:
    """What the CLI shows for a trigger's condition and action."""
    when = trigger.when
    if when.audience is not None:
        source = f"audience {when.audience}" + (f" (split {when.split})" if when.split else "")
    else:
        source = f"stream {when.stream}" + (f" event {when.event}" if when.event else "")
    target = trigger.campaign_id or trigger.canvas_id or "profile attributes"
    return {"when": source, "action": trigger.action, "target": target}
