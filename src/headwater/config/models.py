"""``models:``: SELECTs over sources with typed columns."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from headwater.config.base import Strict as _Strict

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
    sql: str = Field(
        min_length=1, description="One SELECT over sources (by name) and other models."
    )
    primary_key: str = Field(
        description="The declared column identifying a row; missing or shared keys reject the row."
    )
    columns: dict[str, ColumnSpec] = Field(
        description="Declared columns with their types and checks; only these are kept."
    )
    source: str | None = Field(
        default=None,
        description="Run the SQL inside this sql source's database (it then names the database's own tables).",
    )
    description: str | None = Field(default=None, description="What the model holds, for people.")
