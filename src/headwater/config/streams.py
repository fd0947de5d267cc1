"""The model of one ``streams:`` entry in headwater.yml.

Part of the project model (``Project.streams``), so ``headwater validate`` reports every
problem of a stream at its line, as it does for every other section; ``parse_streams``
validates loose entries the same way (tests, the benchmark). Secrets (tokens, passwords,
HMAC keys) are ``SecretStr`` and never printed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, model_validator

from headwater.config.base import Strict as _Strict
from headwater.config.document import Loc, located_errors
from headwater.errors import ConfigError

DEFAULT_INSPECTOR_SIZE = 50
# How much one webhook may ask of the gateway: items in the payload's batch (an ActionIQ
# ``events`` array, an Extole batch, a generic mapping's ``each`` array) and Braze objects
# the whole payload maps to. Beyond either, the webhook is refused with a 413 at once.
DEFAULT_MAX_ITEMS = 5_000
DEFAULT_MAX_OBJECTS = 10_000
EXTOLE_REWARD_STATES = ("EARNED", "FULFILLED", "SENT", "REDEEMED", "FAILED", "CANCELED", "REVOKED")


class BearerAuth(_Strict):
    type: Literal["bearer"] = Field(description="Authorization: Bearer <token>.")
    token: SecretStr = Field(description="The token partners send.")


class BasicAuth(_Strict):
    type: Literal["basic"] = Field(description="HTTP basic authentication.")
    username: str = Field(description="The user name partners send.")
    password: SecretStr = Field(description="The password partners send.")


class HmacAuth(_Strict):
    """HMAC-SHA256 of the raw body with ``secret``, sent in ``header`` (hex or base64),
    optionally after a prefix such as ``sha256=``.

    With ``timestamp_header`` the partner also sends the time it signed (Unix seconds) and
    signs ``signed_payload`` (the timestamp and the body, as Slack and Stripe do): a request
    more than ``tolerance_seconds`` away from now is refused, and so is a signature already
    used, so a captured request cannot be replayed."""

    type: Literal["hmac"] = Field(description="HMAC-SHA256 signature of the raw body.")
    secret: SecretStr = Field(description="The shared signing secret.")
    header: str = Field(default="X-Signature", description="The header carrying the signature.")
    encoding: Literal["hex", "base64"] = Field(
        default="hex", description="How the signature is written."
    )
    prefix: str = Field(default="", description="Text before the signature, such as sha256=.")
    timestamp_header: str | None = Field(
        default=None,
        description="The header carrying the time the partner signed (Unix seconds); turns on "
        "replay protection.",
    )
    tolerance_seconds: int = Field(
        default=300,
        ge=1,
        le=86_400,
        description="How far a signed timestamp may be from now (with timestamp_header).",
    )
    signed_payload: str = Field(
        default="{timestamp}.{body}",
        description="What is signed (with timestamp_header): {timestamp} and {body} once each; "
        "Slack's form is v0:{timestamp}:{body}.",
    )

    @model_validator(mode="after")
    def _payload_names_both(self) -> HmacAuth:
        loose = {"tolerance_seconds", "signed_payload"} & self.model_fields_set
        if self.timestamp_header is None and loose:
            raise ValueError(f"{', '.join(sorted(loose))} apply only with timestamp_header")
        for part in ("{timestamp}", "{body}"):
            if self.signed_payload.count(part) != 1:
                raise ValueError(f"signed_payload must contain {part} once")
        return self


StreamAuth = Annotated[BearerAuth | BasicAuth | HmacAuth, Field(discriminator="type")]


class ContentConfig(_Strict):
    """Connected Content: which attributes to keep per user, and the token that reads them."""

    attributes: list[str] = Field(
        min_length=1,
        description="Attributes (or event properties) whose latest values are kept per user.",
    )
    token: SecretStr = Field(
        description="The token Connected Content requests present (header or ?token=)."
    )


class GenericMapping(_Strict):
    """Liquid templates producing Braze objects from any JSON payload.

    Each object is a dict whose string values are templates rendered with the payload in
    scope (``payload``; with ``each``, also ``item``). A value that is exactly one
    ``{{ expression }}`` keeps the expression's JSON type; an empty result drops the field.
    """

    each: str | None = Field(
        default=None, description="A dotted path to an array in the payload; one pass per item."
    )
    when: str | None = Field(
        default=None, description="A template; an empty, false, 0 or nil result skips the item."
    )
    event_id: str | None = Field(
        default=None,
        description="A template naming the partner's unique event id, for dropping re-posted events.",
    )
    attributes: list[dict[str, Any]] = Field(
        default_factory=list, description="Attribute objects, as templates."
    )
    events: list[dict[str, Any]] = Field(
        default_factory=list, description="Event objects, as templates."
    )
    purchases: list[dict[str, Any]] = Field(
        default_factory=list, description="Purchase objects, as templates."
    )

    @model_validator(mode="after")
    def _something(self) -> GenericMapping:
        if not (self.attributes or self.events or self.purchases):
            raise ValueError("a mapping needs at least one of attributes, events, purchases")
        return self


class StreamConfig(_Strict):
    preset: Literal["extole", "actioniq", "generic"] = Field(
        description="How payloads become Braze objects: Extole's webhooks, ActionIQ's events, or a Liquid mapping."
    )
    auth: StreamAuth = Field(description="How partners prove who they are.")
    destination: str = Field(default="braze", description="Where the stream's objects go.")
    test_destination: str | None = Field(
        default=None, description="Where test traffic goes (a test workspace)."
    )
    test_token: SecretStr | None = Field(
        default=None,
        description="Requests authenticated with this token (or signed with it) go to test_destination.",
    )
    test_field: str | None = Field(
        default=None,
        description="A dotted payload path; a truthy value routes the request to test_destination.",
    )
    dedupe_attributes: bool = Field(
        default=True,
        description="Drop attributes whose value equals the last one Braze accepted for the user.",
    )
    dedupe_events: bool = Field(
        default=True, description="Deliver an event re-posted within the duplicate window once."
    )
    resolve_email: bool = Field(
        default=True,
        description="Find the Braze user of email-only objects (or create an alias for them).",
    )
    alias_label: str = Field(
        default="email", description="The alias label used for users created by email."
    )
    inspector_size: int = Field(
        default=DEFAULT_INSPECTOR_SIZE,
        ge=0,
        le=10_000,
        description="Payloads the event inspector keeps for this stream (all streams share "
        "inspector.max_bytes).",
    )
    max_items: int = Field(
        default=DEFAULT_MAX_ITEMS,
        ge=1,
        le=1_000_000,
        description="Items one webhook's batch may hold (ActionIQ events, an Extole batch, a "
        "generic each array); beyond it the webhook is answered 413.",
    )
    max_objects: int = Field(
        default=DEFAULT_MAX_OBJECTS,
        ge=1,
        le=1_000_000,
        description="Braze objects one webhook may map to; beyond it the webhook is answered 413.",
    )
    content: ContentConfig | None = Field(
        default=None, description="Keep attributes per user for Connected Content."
    )
    # extole
    external_id_from: Literal["partner_user_id", "email"] = Field(
        default="partner_user_id", description="Extole: which field becomes the Braze external_id."
    )
    reward_states: list[str] = Field(
        default_factory=lambda: ["FULFILLED"], description="Extole: reward states sent as events."
    )
    event_prefix: str | None = Field(
        default=None, description="Extole: event name prefix (default extole_)."
    )
    # generic
    mapping: GenericMapping | None = Field(default=None, description="Generic: the Liquid mapping.")

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


def stream_problems(
    name: str, spec: Any, destinations: set[str] | None
) -> tuple[StreamConfig | None, list[tuple[Loc, str]]]:
    """Validate one stream; return it (None if invalid) and every problem at its location
    inside the stream. Destinations and templates are checked on the raw entry, so they
    are reported even when other fields are wrong."""
    if not isinstance(spec, dict):
        return None, [((), "must be a mapping of stream options")]
    problems: list[tuple[Loc, str]] = []
    stream = None
    try:
        stream = StreamConfig.model_validate(spec)
    except ValidationError as exc:
        problems.extend(located_errors(exc, spec))
    problems.extend(reference_problems(spec, destinations))
    return stream, problems


def reference_problems(
    spec: dict[str, Any], destinations: set[str] | None
) -> list[tuple[Loc, str]]:
    """What the stream's own model cannot see: destinations named elsewhere in the file, and
    templates that would not compile. Checked on the raw entry, so they are reported even
    when other fields are wrong (destinations only when ``destinations`` is given)."""
    problems: list[tuple[Loc, str]] = []
    for field in ("destination", "test_destination") if destinations is not None else ():
        target = spec.get(field, "braze" if field == "destination" else None)
        if isinstance(target, str) and target not in destinations:
            problems.append(((field,), f"no destination named {target!r}"))
    mapping = spec.get("mapping")
    if isinstance(mapping, dict):
        problems.extend(_template_problems(mapping, ("mapping",)))
    return problems


def check_streams(raw: dict[str, Any], report: Callable[[Loc, str], None]) -> None:
    """The ``streams:`` section's references, each reported at its line; ``parse_project``
    runs it (the entries themselves are validated with the project model)."""
    streams = raw.get("streams")
    if not isinstance(streams, dict):
        return
    destinations = raw.get("destinations")
    known = set(destinations) if isinstance(destinations, dict) else set()
    for name, spec in streams.items():
        if not isinstance(spec, dict):
            continue  # the project model says so already
        for loc, message in reference_problems(spec, known):
            report(("streams", name, *loc), message)


def parse_streams(
    raw: dict[str, dict[str, Any]], destinations: set[str] | None = None
) -> dict[str, StreamConfig]:
    """Validate every stream; raise ConfigError listing every problem, by stream name."""
    problems: list[str] = []
    streams: dict[str, StreamConfig] = {}
    for name, spec in (raw or {}).items():
        stream, found = stream_problems(name, spec, destinations)
        for loc, message in found:
            problems.append(f"{'.'.join(str(p) for p in ('streams', name, *loc))}: {message}")
        if stream is not None and not found:
            streams[name] = stream
    if problems:
        raise ConfigError(problems)
    return streams


def _template_problems(mapping: dict[str, Any], loc: Loc) -> list[tuple[Loc, str]]:
    """Compile every template now, so a typo stops ``serve`` instead of failing each request."""
    from liquid.exceptions import LiquidError

    from headwater.config.templates import compile_template

    problems: list[tuple[Loc, str]] = []

    def visit(value: Any, where: Loc) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                visit(inner, (*where, key))
        elif isinstance(value, list):
            for i, inner in enumerate(value):
                visit(inner, (*where, i))
        elif isinstance(value, str) and "{" in value:
            try:
                compile_template(value)
            except LiquidError as exc:
                problems.append((where, f"template {value!r}: {str(exc).splitlines()[0]}"))

    for key in ("when", "event_id", "attributes", "events", "purchases"):
        if key in mapping:
            visit(mapping[key], (*loc, key))
    return problems
