"""``syncs:``: a model sent to a destination: identifier, mapping, removals, schedule."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator, model_validator

from headwater.config.base import Strict as _Strict


class UserAlias(_Strict):
    name: str = Field(description="The column holding the alias name.")
    label: str = Field(description="The alias label, a literal such as crm.")


class SyncIdentifier(_Strict):
    """Exactly one way to find the Braze user: a column per identifier kind."""

    external_id: str | None = Field(
        default=None, description="The column holding the Braze external_id."
    )
    user_alias: UserAlias | None = Field(
        default=None, description="Find users by alias: a column for the name and a literal label."
    )
    braze_id: str | None = Field(
        default=None, description="The column holding the Braze id (never creates users)."
    )
    email: str | None = Field(default=None, description="The column holding the email address.")
    phone: str | None = Field(default=None, description="The column holding the phone number.")

    @model_validator(mode="after")
    def _exactly_one(self) -> SyncIdentifier:
        chosen = [k for k in type(self).model_fields if getattr(self, k) is not None]
        if len(chosen) != 1:
            raise ValueError(
                "set exactly one of external_id, user_alias, braze_id, email, phone"
                + (f" (got {', '.join(chosen)})" if chosen else "")
            )
        return self

    @property
    def kind(self) -> str:
        return next(k for k in type(self).model_fields if getattr(self, k) is not None)

    @property
    def columns(self) -> list[str]:
        if self.user_alias is not None:
            return [self.user_alias.name]
        return [getattr(self, self.kind)]


class EventSpec(_Strict):
    """Columns of an event; ``name`` is a literal event name, ``name_column`` a column."""

    name: str | None = Field(default=None, description="The event name, a literal.")
    name_column: str | None = Field(default=None, description="The column holding the event name.")
    time: str | None = Field(default=None, description="The column holding the event time.")
    properties: dict[str, str] = Field(
        default_factory=dict, description="Event property -> column."
    )

    @model_validator(mode="after")
    def _one_name(self) -> EventSpec:
        if (self.name is None) == (self.name_column is None):
            raise ValueError("set exactly one of name (a literal) or name_column")
        return self

    @property
    def columns(self) -> list[str]:
        cols = [self.name_column, self.time, *self.properties.values()]
        return [c for c in cols if c]


class PurchaseSpec(_Strict):
    """Columns of a purchase; ``currency`` is a literal code, ``currency_column`` a column."""

    product_id: str = Field(description="The column holding the product id.")
    price: str = Field(description="The column holding the price.")
    currency: str | None = Field(
        default=None, description="A literal 3-letter ISO 4217 code such as USD."
    )
    currency_column: str | None = Field(
        default=None, description="The column holding the currency code."
    )
    quantity: str | None = Field(default=None, description="The column holding the quantity.")
    time: str | None = Field(default=None, description="The column holding the purchase time.")
    properties: dict[str, str] = Field(
        default_factory=dict, description="Purchase property -> column."
    )

    @model_validator(mode="after")
    def _one_currency(self) -> PurchaseSpec:
        if (self.currency is None) == (self.currency_column is None):
            raise ValueError("set exactly one of currency (a literal) or currency_column")
        if self.currency is not None and not re.fullmatch(r"[A-Z]{3}", self.currency):
            raise ValueError("currency must be a 3-letter ISO 4217 code such as USD")
        return self

    @property
    def columns(self) -> list[str]:
        cols = [
            self.product_id,
            self.price,
            self.currency_column,
            self.quantity,
            self.time,
            *self.properties.values(),
        ]
        return [c for c in cols if c]


_EVERY = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_EVERY_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# Bounds that keep every fire time a datetime can hold: intervals up to a year, and
# start/end in years a slot after them can still be written.
MAX_EVERY_SECONDS = 366 * 86400
EARLIEST_BOUND = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_BOUND = datetime(9000, 1, 1, tzinfo=UTC)


class Schedule(_Strict):
    """When a job runs: ``every: 15m``, a ``cron:`` read in ``timezone:``, or ``after:``
    another job succeeded; ``start``/``end`` bound it. Fire times live in
    ``headwater.schedules.timing``; ``after:`` cycles and unknown jobs are checked by
    ``headwater.schedules.checks`` (they need the whole file)."""

    every: str | None = Field(
        default=None,
        description="A fixed interval: 30s, 15m, 2h, 1d (slots counted from start, else from the Unix epoch).",
    )
    cron: str | None = Field(
        default=None, description="A cron expression, read in timezone (daylight saving aware)."
    )
    timezone: str = Field(
        default="UTC",
        description="The time zone cron, start and end are read in, e.g. Europe/Paris.",
    )
    after: str | None = Field(
        default=None,
        description="Run each time this other sync finishes successfully (succeeded or partial).",
    )
    start: datetime | None = Field(
        default=None, description="No run before this time (a date or date-time)."
    )
    end: datetime | None = Field(default=None, description="No run after this time.")

    @field_validator("start", "end", mode="before")
    @classmethod
    def _date_is_midnight(cls, value: Any) -> Any:
        if isinstance(value, date) and not isinstance(value, datetime):
            return datetime.combine(value, datetime.min.time())
        return value

    @field_validator("every")
    @classmethod
    def _valid_every(cls, value: str | None) -> str | None:
        if value is not None and (not _EVERY.match(str(value)) or _every_seconds(value) <= 0):
            raise ValueError(f"not an interval: {value!r}; write e.g. 30s, 15m, 2h or 1d")
        if value is not None and _every_seconds(value) > MAX_EVERY_SECONDS:
            raise ValueError(f"interval {value!r} is longer than a year (366d)")
        return value

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        from croniter import croniter

        if value is not None and not value.startswith("@") and len(value.split()) != 5:
            raise ValueError(
                f"cron expression {value!r} needs five fields: minute hour day month weekday"
            )
        if value is not None and not croniter.is_valid(value):
            raise ValueError(f"not a valid cron expression: {value!r}")
        if value is not None:
            try:
                croniter(value).get_next()
            except Exception:
                raise ValueError(f"cron expression {value!r} matches no date") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _valid_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except Exception:
            raise ValueError(f"unknown time zone: {value!r}") from None
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Schedule:
        kinds = [k for k in ("every", "cron", "after") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("a schedule needs exactly one of every, cron or after")
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None and not _within_bounds(self.aware(value)):
                raise ValueError(f"{name} must fall between 1970 and 9000")
        if self.start and self.end and self.aware(self.end) <= self.aware(self.start):
            raise ValueError("end must be after start")
        return self

    @property
    def every_seconds(self) -> int | None:
        return _every_seconds(self.every) if self.every is not None else None

    def aware(self, value: datetime) -> datetime:
        """``start``/``end`` written without an offset are read in ``timezone``."""
        return value if value.tzinfo else value.replace(tzinfo=ZoneInfo(self.timezone))

    def describe(self) -> str:
        if self.every is not None:
            return f"every {self.every}"
        if self.cron is not None:
            return f"cron {self.cron} {self.timezone}"
        return f"after {self.after}"


def _within_bounds(value: datetime) -> bool:
    try:
        return EARLIEST_BOUND <= value.astimezone(UTC) <= LATEST_BOUND
    except (OverflowError, ValueError):  # year 1 with a positive offset is before year 1
        return False


def _every_seconds(value: str) -> int:
    number, unit = _EVERY.match(str(value)).groups()  # type: ignore[union-attr]
    return int(number) * _EVERY_SECONDS[unit]


class SyncConfig(_Strict):
    model: str = Field(description="The model to send.")
    destination: str = Field(description="The destination to send it to.")
    type: Literal["attributes", "events", "purchases"] = Field(
        default="attributes",
        description="Send rows as user attributes, custom events or purchases.",
    )
    identifier: SyncIdentifier = Field(
        description="How to find the Braze user: exactly one identifier kind, by column."
    )
    mode: Literal["upsert", "update", "insert"] = Field(
        default="upsert",
        description="upsert: create or update users; update: existing users only; insert: new rows only.",
    )
    mapping: dict[str, str] = Field(
        default_factory=dict, description="Braze attribute -> model column (attributes syncs)."
    )
    event: EventSpec | None = Field(
        default=None, description="The event's name, time and properties (events syncs)."
    )
    purchase: PurchaseSpec | None = Field(
        default=None, description="The purchase's columns (purchases syncs)."
    )
    on_removed: Literal["keep", "unset", "delete"] = Field(
        default="keep",
        description="Rows that left the model: keep, unset (null the mapped attributes) or delete (the user).",
    )
    schedule: Schedule | None = Field(
        default=None,
        description="When headwater serve runs the sync: every, cron + timezone, or after (see schedule).",
    )

    @model_validator(mode="after")
    def _shape_fits_type(self) -> SyncConfig:
        if self.type == "attributes" and not self.mapping:
            raise ValueError("an attributes sync needs a mapping of Braze fields to columns")
        if self.type == "events" and self.event is None:
            raise ValueError("an events sync needs an event block (name, time, properties)")
        if self.type == "purchases" and self.purchase is None:
            raise ValueError("a purchases sync needs a purchase block (product_id, price, ...)")
        if self.type != "events" and self.event is not None:
            raise ValueError("event applies to events syncs only")
        if self.type != "purchases" and self.purchase is not None:
            raise ValueError("purchase applies to purchases syncs only")
        if self.type != "attributes" and self.on_removed != "keep":
            raise ValueError("events and purchases cannot be removed; on_removed must be keep")
        return self

    @property
    def columns(self) -> list[str]:
        """Every model column this sync reads, identifier first."""
        cols = [*self.identifier.columns, *self.mapping.values()]
        if self.event:
            cols += self.event.columns
        if self.purchase:
            cols += self.purchase.columns
        return list(dict.fromkeys(cols))
