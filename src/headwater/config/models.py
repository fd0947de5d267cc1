"""``models:``: SELECTs over sources with typed columns."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from headwater.config.base import Strict as _Strict
from headwater.config.identity import RESERVED_COLUMNS, IdentityConfig, Survivorship
from headwater.config.syncs import Schedule

PERSON_ID = "person_id"


def declared_columns(raw_model: object) -> dict | None:
    """The columns a sync or an audience may name in a model as written in the project
    file (an identity model's ``person_id`` included); None when it declares none."""
    declared = raw_model.get("columns") if isinstance(raw_model, dict) else None
    if not isinstance(declared, dict):
        return None
    if isinstance(raw_model.get("identity"), dict):  # type: ignore[union-attr]
        return {PERSON_ID: {}, **declared}
    return declared


ColumnType = Literal["string", "integer", "float", "boolean", "time", "array", "object"]


class ColumnSpec(_Strict):
    type: ColumnType = Field(
        default="string",
        description="The column's type; a value that does not fit rejects its row.",
    )
    required: bool = Field(default=False, description="Reject rows where the value is missing.")
    max_length: int | None = Field(
        default=None, gt=0, description="Strings only: reject longer values."
    )
    pattern: str | None = Field(
        default=None, description="Strings only: a regular expression the whole value must match."
    )
    split: str | None = Field(
        default=None, min_length=1, description="Arrays only: split text on this delimiter."
    )
    survivorship: Survivorship | None = Field(
        default=None,
        description="Identity models only: how a person's value is chosen among its records "
        "(source_priority, most_recent non-null, most_frequent).",
    )

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _options_fit_type(self) -> ColumnSpec:
        if (self.max_length is not None or self.pattern is not None) and self.type != "string":
            raise ValueError("max_length and pattern apply to string columns only")
        if self.split is not None and self.type != "array":
            raise ValueError("split applies to array columns only")
        return self


class ModelConfig(_Strict):
    sql: str | None = Field(
        min_length=1,
        description="One SELECT over sources (by name) and other models (not for identity models).",
    )
    primary_key: str = Field(
        description="The declared column identifying a row; missing or shared keys reject the "
        "row (person_id for identity models).",
    )
    columns: dict[str, ColumnSpec] = Field(
        description="Declared columns with their types and checks; only these are kept."
    )
    source: str | None = Field(
        default=None,
        description="Run the SQL inside this sql source's database (it then names the database's own tables).",
    )
    description: str | None = Field(default=None, description="What the model holds, for people.")
    identity: IdentityConfig | None = Field(
        default=None,
        description="Resolve several sources into persons (see the identity guide); the "
        "columns are then the golden record's, each with its survivorship rule.",
    )

    schedule: Schedule | None = Field(
        default=None,
        description="Identity models only: when serve resolves it again (cron, every, after).",
    )

    @model_validator(mode="before")
    @classmethod
    def _identity_defaults(cls, data: object) -> object:
        """An identity model has no sql and its primary key is person_id; any other model
        must say both (so a missing one is reported as a required field)."""
        if isinstance(data, dict) and data.get("identity") is not None:
            data = {"sql": None, "primary_key": PERSON_ID, **data}
        return data

    @model_validator(mode="after")
    def _sql_or_identity(self) -> ModelConfig:
        if self.identity is None:
            if self.sql is None:
                raise ValueError("a model needs sql (or identity)")
            if not self.primary_key:
                raise ValueError("a model needs a primary_key")
            if any(spec.survivorship for spec in self.columns.values()):
                raise ValueError("survivorship applies to identity models only")
            if self.schedule is not None:
                raise ValueError("schedule applies to identity models only (schedule the sync)")
            return self
        if self.sql is not None:
            raise ValueError("an identity model takes its rows from identity.sources, not sql")
        if self.source is not None:
            raise ValueError(
                "an identity model has no source: it runs where its identity.sources are "
                "(the warehouse, or their one PostgreSQL database)"
            )
        if self.primary_key != PERSON_ID:
            raise ValueError(f"an identity model's primary key is {PERSON_ID}")
        reserved = [c for c in self.columns if c in RESERVED_COLUMNS or c.startswith("__hw")]
        if reserved:
            raise ValueError(
                f"column {reserved[0]!r} is a name identity resolution keeps for itself "
                f"({', '.join(RESERVED_COLUMNS)}, __hw*); alias it in the source's SQL"
            )
        if PERSON_ID not in self.columns:
            self.columns = {PERSON_ID: ColumnSpec(type="string", required=True), **self.columns}
        return self
