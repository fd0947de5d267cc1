"""The model of one ``streams:`` entry in headwater.yml.

The project file keeps streams as loose dicts so this part can own its own options; they
are validated here, when ``serve`` starts, and every problem is reported with the stream's
name. Secrets (tokens, passwords, HMAC keys) are ``SecretStr`` and never printed.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from headwater.errors import ConfigError

DEFAULT_INSPECTOR_SIZE = 50
# How much one webhook may ask of the gateway: items in the payload's batch (an ActionIQ
# ``events`` array, an Extole batch, a generic mapping's ``each`` array) and Braze objects
# the whole payload maps to. Beyond either, the webhook is refused with a 413 at once.
DEFAULT_MAX_ITEMS = 5_000
DEFAULT_MAX_OBJECTS = 10_000
EXTOLE_REWARD_STATES = ("EARNED", "FULFILLED", "SENT", "REDEEMED", "FAILED", "CANCELED", "REVOKED")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BearerAuth(_Strict):
    type: Literal["bearer"]
    token: SecretStr


class BasicAuth(_Strict):
    type: Literal["basic"]
    username: str
    password: SecretStr


class HmacAuth(_Strict):
    """HMAC-SHA256 of the raw body with ``secret``, sent in ``header`` (hex or base64),
    optionally after a prefix such as ``sha256=``."""

    type: Literal["hmac"]
    secret: SecretStr
    header: str = "X-Signature"
    encoding: Literal["hex", "base64"] = "hex"
    prefix: str = ""


StreamAuth = Annotated[BearerAuth | BasicAuth | HmacAuth, Field(discriminator="type")]


class ContentConfig(_Strict):
    """Connected Content: which attributes to keep per user, and the token that reads them."""

    attributes: list[str] = Field(min_length=1)
    token: SecretStr


class GenericMapping(_Strict):
    """Liquid templates producing Braze objects from any JSON payload.

    Each object is a dict whose string values are templates rendered with the payload in
    scope (``payload``; with ``each``, also ``item``). A value that is exactly one
    ``{{ expression }}`` keeps the expression's JSON type; an empty result drops the field.
    """

    each: str | None = None  # dotted path to an array in the payload; one pass per item
    when: str | None = None  # a template; "", "false", "0" or "nil" skip the item
    event_id: str | None = None  # a template naming the partner's unique event id
    attributes: list[dict[str, Any]] = Field(default_factory=list)
    events: list[dict[str, Any]] = Field(default_factory=list)
    purchases: list[dict[str, Any]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _something(self) -> GenericMapping:
        if not (self.attributes or self.events or self.purchases):
            raise ValueError("a mapping needs at least one of attributes, events, purchases")
        return self


class StreamConfig(_Strict):
    preset: Literal["extole", "actioniq", "generic"]
    auth: StreamAuth
    destination: str = "braze"
    test_destination: str | None = None
    test_token: SecretStr | None = None  # requests signed/authenticated with it go to test
    test_field: str | None = None  # dotted payload path; a truthy value routes to test
    dedupe_attributes: bool = True
    dedupe_events: bool = True
    resolve_email: bool = True
    alias_label: str = "email"
    inspector_size: int = Field(default=DEFAULT_INSPECTOR_SIZE, ge=0, le=10_000)
    max_items: int = Field(default=DEFAULT_MAX_ITEMS, ge=1, le=1_000_000)
    max_objects: int = Field(default=DEFAULT_MAX_OBJECTS, ge=1, le=1_000_000)
    content: ContentConfig | None = None
    # extole
    external_id_from: Literal["partner_user_id", "email"] = "partner_user_id"
    reward_states: list[str] = Field(default_factory=lambda: ["FULFILLED"])
    event_prefix: str | None = None
    # generic
    mapping: GenericMapping | None = None

    @model_validator(mode="after")
    def _fits_preset(self) -> StreamConfig:
        if self.preset == "generic" and self.mapping is None:
            raise ValueError("a generic stream needs a mapping")
        if self.preset != "generic" and self.mapping is not None:
            raise ValueError("mapping applies to generic streams only")
        bad = [s for s in self.reward_states if s.upper() not in EXTOLE_REWARD_STATES]
        if bad:
            raise ValueError(
                f"unknown reward state(s) {bad}; known: {', '.join(EXTOLE_REWARD_STATES)}"
            )
        self.reward_states = [s.upper() for s in self.reward_states]
        if (self.test_token or self.test_field) and not self.test_destination:
            raise ValueError("test_token and test_field need a test_destination")
        return self


def parse_streams(
    raw: dict[str, dict[str, Any]], destinations: set[str] | None = None
) -> dict[str, StreamConfig]:
    """Validate every stream; raise ConfigError listing every problem, by stream name."""
    problems: list[str] = []
    streams: dict[str, StreamConfig] = {}
    for name, spec in (raw or {}).items():
        try:
            stream = StreamConfig.model_validate(spec)
        except ValidationError as exc:
            for error in exc.errors(include_input=False, include_url=False):
                where = ".".join(str(p) for p in ("streams", name, *error["loc"]))
                problems.append(f"{where}: {error['msg']}")
            continue
        if stream.mapping is not None:
            problems.extend(
                f"streams.{name}.mapping: {p}" for p in _template_problems(stream.mapping)
            )
        if destinations is not None:
            for field in ("destination", "test_destination"):
                target = getattr(stream, field)
                if target is not None and target not in destinations:
                    problems.append(f"streams.{name}.{field}: no destination named {target!r}")
        streams[name] = stream
    if problems:
        raise ConfigError(problems)
    return streams


def _template_problems(mapping: GenericMapping) -> list[str]:
    """Compile every template now, so a typo stops ``serve`` instead of failing each request."""
    from liquid.exceptions import LiquidError

    from headwater.streams.mapping import compile_template

    problems: list[str] = []

    def visit(value: Any) -> None:
        if isinstance(value, dict):
            for inner in value.values():
                visit(inner)
        elif isinstance(value, list):
            for inner in value:
                visit(inner)
        elif isinstance(value, str) and "{" in value:
            try:
                compile_template(value)
            except LiquidError as exc:
                problems.append(f"template {value!r}: {str(exc).splitlines()[0]}")

    visit([mapping.when, mapping.event_id, mapping.attributes, mapping.events, mapping.purchases])
    return problems
