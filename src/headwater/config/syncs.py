"""``syncs:``: a model sent to a destination: identifier, mapping, removals, schedule."""

from __future__ import annotations

import re
from typing import Literal
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


class Schedule(_Strict):
    cron: str = Field(
        description="A cron expression. Checked and shown by validate; Headwater does not run syncs on it yet."
    )
    timezone: str = Field(
        default="UTC",
        description="The time zone the cron expression is read in, e.g. Europe/Paris.",
    )

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        from croniter import croniter

        if not croniter.is_valid(value):
            raise ValueError(f"not a valid cron expression: {value!r}")
        return value

    @field_validator("timezone")
    @classmethod
    def _valid_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except Exception:
            raise ValueError(f"unknown time zone: {value!r}") from None
        return value


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
        default=None, description="When the sync should run (see schedule)."
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
