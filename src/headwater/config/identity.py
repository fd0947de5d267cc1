"""``identity:`` on a model: one person built from several sources that share no single key.

Records are linked through the keys they declare (email, phone, a CRM id...); the rules
here say how a key's values are cleaned and when a shared value must not merge people.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from headwater.config.base import Strict as _Strict

KeyType = Literal["email", "phone", "string"]
Survivorship = Literal["source_priority", "most_recent", "most_frequent"]
DEFAULT_MAX_RECORDS_PER_VALUE = 1000
# Column names the resolver uses for its own bookkeeping beside the golden columns.
RESERVED_COLUMNS = (
    "_source",
    "_source_index",
    "_priority",
    "_record_id",
    "_updated_at",
    "_row",
    "_rid",
    "_fp",
    "_rh",
)


class IdentityKey(_Strict):
    type: KeyType = Field(
        default="string",
        description="email (email-validator: trimmed, lower-cased, invalid ones kept out), "
        "phone (phonenumbers, to E.164) or string (trimmed; see `normalize`).",
    )
    default_region: str | None = Field(
        default=None,
        pattern=r"^[A-Z]{2}$",
        description="Phones only: the ISO country (US, FR...) of numbers written without +.",
    )
    normalize: str | None = Field(
        default=None,
        min_length=1,
        description="Strings only: a SQL expression over `value` (the raw text) giving the "
        "cleaned value, e.g. upper(trim(value)); NULL or '' keeps the value out.",
    )
    max_per_person: int | None = Field(
        default=None,
        gt=0,
        description="A person holds at most this many values of the key (1: two CRM ids "
        "never merge); merges that would break it are refused and audited.",
    )
    max_records_per_value: int | None = Field(
        default=None,
        gt=1,
        description="A value held by more records than this (test@example.com, a "
        "call-centre phone) links nobody; defaults to the model's limit.",
    )

    @model_validator(mode="after")
    def _options_fit_type(self) -> IdentityKey:
        if self.default_region is not None and self.type != "phone":
            raise ValueError("default_region applies to phone keys only")
        if self.normalize is not None and self.type != "string":
            raise ValueError("normalize applies to string keys only")
        return self


class IdentitySource(_Strict):
    sql: str = Field(min_length=1, description="One SELECT over sources (by name).")
    record_id: str = Field(
        min_length=1, description="The column identifying a record within this source."
    )
    keys: dict[str, str] = Field(
        min_length=1,
        description="Identity key -> the column (or SQL expression) holding its value here.",
    )
    updated_at: str | None = Field(
        default=None,
        description="The column saying when the record last changed (for most_recent).",
    )
    priority: int = Field(
        default=100,
        description="Lower wins for source_priority golden columns.",
    )


class IdentityConfig(_Strict):
    keys: dict[str, IdentityKey] = Field(
        min_length=1,
        description="The keys records are linked by, in priority order (earlier keys are "
        "trusted more when a limit rule must break a link).",
    )
    sources: dict[str, IdentitySource] = Field(
        min_length=1, description="The record sets resolved into persons, by name."
    )
    max_records_per_value: int = Field(
        default=DEFAULT_MAX_RECORDS_PER_VALUE,
        gt=1,
        description="A key value held by more records than this links nobody (audited).",
    )
    max_iterations: int = Field(
        default=100,
        gt=0,
        description="Guard on the connected-components loop (rounds until nothing changes).",
    )
    memory_limit: str | None = Field(
        default=None,
        pattern=r"^\s*\d+(\.\d+)?\s*([KMGT]i?B)\s*$",
        description="DuckDB's memory for a run (e.g. 3GB): beyond it the run spills to "
        "disk beside the warehouse instead of growing. Default: DuckDB's (80% of RAM).",
    )
    merge_in_braze: bool = Field(
        default=False,
        description="When two persons merge and a sync over this model had sent both to "
        "Braze by external_id, send Braze /users/merge (the older person's id is kept); "
        "each merge is sent once and recorded.",
    )

    @model_validator(mode="after")
    def _keys_declared(self) -> IdentityConfig:
        for name, source in self.sources.items():
            unknown = sorted(set(source.keys) - set(self.keys))
            if unknown:
                raise ValueError(
                    f"source {name!r} uses undeclared key(s) {', '.join(unknown)}; "
                    f"declared: {', '.join(self.keys)}"
                )
        return self
