"""``audiences:``: a SQL condition over a model, synced as one boolean attribute per split.

Shares are percentages of 10,000 fixed slots (so 0.01 % is the finest share). Splits and
holdout must add up to exactly 100: every member of an audience is then either in a split
or in the holdout, and a share can only grow by taking slots another gives up in the same
edit, which makes "who moved" something the file says out loud. A remainder left over
(sum below 100) would be a holdout nobody named, and it would silently swallow new slots.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from headwater.config.base import Strict as _Strict
from headwater.config.models import declared_columns
from headwater.config.syncs import Schedule, SyncIdentifier

SLOTS = 10_000  # slots per audience; a share of 1 % is 100 slots
HOLDOUT = "holdout"  # the holdout's group name; no split may take it
DEFAULT_SPLIT = "all"  # the one split of an audience that declares none
DEFAULT_ATTRIBUTE = "AIQ_{audience}_{split}"  # ActionIQ's naming
MAX_SPLITS = 100  # per audience: each is an attribute and a branch of the split SQL
SPLIT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def share_slots(percent: float) -> int:
    """A percentage as a number of slots; it must land on a whole slot (0.01 %)."""
    slots = Decimal(str(percent)) * SLOTS / 100
    if slots != slots.to_integral_value():
        raise ValueError(f"{percent} % is finer than a slot: use at most two decimals")
    return int(slots)


def render_attribute(template: str, audience: str, split: str) -> str:
    """The attribute name for one split: ``{audience}`` and ``{split}`` substituted."""
    return template.replace("{audience}", audience).replace("{split}", split)


class AudienceDefaults(_Strict):
    """Project-wide defaults every audience may override."""

    attribute: str = Field(
        default=DEFAULT_ATTRIBUTE,
        description="The attribute name template: {audience} and {split} are substituted (ActionIQ's AIQ_<audience>_<split> by default).",
    )
    on_exit: Literal["false", "unset"] = Field(
        default="false",
        description="What a person leaving a split gets: false, or unset (the attribute removed).",
    )

    @field_validator("on_exit", mode="before")
    @classmethod
    def _yaml_false(cls, value: Any) -> Any:
        return "false" if value is False else value

    @field_validator("attribute")
    @classmethod
    def _known_placeholders(cls, value: str) -> str:
        return _check_template(value)


def _check_template(value: str) -> str:
    unknown = sorted(set(_PLACEHOLDER.findall(value)) - {"audience", "split"})
    if unknown:
        raise ValueError(
            f"unknown placeholder {{{unknown[0]}}} in {value!r}: use {{audience}} and {{split}}"
        )
    return value


class AudienceConfig(_Strict):
    model: str = Field(description="The model whose rows are the people (any model).")
    where: str = Field(
        min_length=1,
        description="A SQL condition over the model's columns (DuckDB dialect): who is in the audience.",
    )
    destination: str = Field(description="The destination the attributes go to.")
    identifier: SyncIdentifier | None = Field(
        default=None,
        description="How to find the Braze user; default: the model's primary key as external_id.",
    )
    splits: dict[str, float] | None = Field(
        default=None,
        description="Named shares in percent (0.01 % steps); with holdout they add up to 100. Default: one split, all.",
    )
    holdout: float = Field(
        default=0,
        ge=0,
        lt=100,
        description="The percent of members held out: recorded in the history, sent nothing.",
    )
    salt: str | None = Field(
        default=None,
        min_length=1,
        description="Mixed into each person's slot hash; default: the audience's name. Changing it reshuffles everyone.",
    )
    attribute: str | None = Field(
        default=None,
        description="The attribute name template ({audience}, {split}); default: audience_defaults.attribute.",
    )
    on_exit: Literal["false", "unset"] | None = Field(
        default=None,
        description="Leaving a split sends false, or unset (null); default: audience_defaults.on_exit.",
    )
    mode: Literal["upsert", "update"] = Field(
        default="upsert",
        description="upsert: entering creates the Braze user if missing; update: existing users only.",
    )
    schedule: Schedule | None = Field(
        default=None, description="When headwater serve runs the audience (see schedule)."
    )

    @field_validator("on_exit", mode="before")
    @classmethod
    def _yaml_false(cls, value: Any) -> Any:
        return "false" if value is False else value

    @field_validator("attribute")
    @classmethod
    def _known_placeholders(cls, value: str | None) -> str | None:
        return None if value is None else _check_template(value)

    @field_validator("splits")
    @classmethod
    def _split_names(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("splits needs at least one split (or leave it out)")
        if len(value) > MAX_SPLITS:
            raise ValueError(f"{len(value)} splits: an audience has at most {MAX_SPLITS}")
        for name, percent in value.items():
            if not SPLIT_NAME.fullmatch(name):
                raise ValueError(
                    f"split {name!r}: use letters, digits, _ and -, at most 40 characters "
                    "(it becomes part of an attribute name)"
                )
            if name.lower() == HOLDOUT:
                raise ValueError(f"split {name!r}: the name holdout is the holdout's own")
            if not percent > 0:
                raise ValueError(f"split {name!r}: a share must be above 0 %")
            share_slots(percent)
        return value

    @field_validator("holdout")
    @classmethod
    def _holdout_slots(cls, value: float) -> float:
        share_slots(value)
        return value

    @model_validator(mode="after")
    def _adds_up(self) -> AudienceConfig:
        if self.splits is not None:
            total = sum(share_slots(p) for p in self.splits.values()) + share_slots(self.holdout)
            if total != SLOTS:
                raise ValueError(
                    f"splits and holdout add up to {total / 100:g} %, not 100 %: every member "
                    "is in one split or the holdout"
                )
        return self

    def groups(self) -> dict[str, int]:
        """Every group (splits, then the holdout if any) and its share in slots."""
        splits = self.splits or {DEFAULT_SPLIT: 100 - self.holdout}
        found = {name: share_slots(p) for name, p in splits.items()}
        if self.holdout:
            found[HOLDOUT] = share_slots(self.holdout)
        return found

    def split_names(self) -> list[str]:
        """The splits that receive an attribute (not the holdout)."""
        return list(self.splits or {DEFAULT_SPLIT: 0})


def check_audiences(raw: dict[str, Any], report: Callable[[tuple, str], None]) -> None:
    """References from ``audiences:`` to models, destinations and columns, at their lines,
    and attribute names that two splits would share; ``parse_project`` runs it."""
    audiences = raw.get("audiences")
    if not isinstance(audiences, dict):
        return
    models = raw.get("models") if isinstance(raw.get("models"), dict) else {}
    destinations = raw.get("destinations") if isinstance(raw.get("destinations"), dict) else {}
    defaults = raw.get("audience_defaults")
    default_template = DEFAULT_ATTRIBUTE
    if isinstance(defaults, dict) and isinstance(defaults.get("attribute"), str):
        default_template = defaults["attribute"]
    owners: dict[str, tuple[str, str]] = {}
    for name, spec in audiences.items():
        if not isinstance(spec, dict) or not isinstance(name, str):
            continue
        dest = spec.get("destination")
        if isinstance(dest, str) and dest not in destinations:
            report(("audiences", name, "destination"), f"no destination named {dest!r}")
        model_name = spec.get("model")
        if isinstance(model_name, str):
            if model_name not in models:
                report(("audiences", name, "model"), f"no model named {model_name!r}")
            else:
                _check_columns(name, spec, models[model_name], model_name, report)
        where = spec.get("where")
        if isinstance(where, str):
            problem = condition_problem(where)
            if problem:
                report(("audiences", name, "where"), problem)
        template = spec.get("attribute")
        template = template if isinstance(template, str) else default_template
        splits = spec.get("splits")
        names = list(splits) if isinstance(splits, dict) and splits else [DEFAULT_SPLIT]
        for split in names:
            if not isinstance(split, str):
                continue
            attribute = render_attribute(template, name, split)
            owner = owners.get(attribute)
            if owner is not None and owner != (name, split):
                where_loc = ("audiences", name, "attribute" if "attribute" in spec else "splits")
                report(
                    where_loc,
                    f"attribute {attribute!r} is also audience {owner[0]!r} split "
                    f"{owner[1]!r}'s: put {{audience}} and {{split}} in the template",
                )
            owners.setdefault(attribute, (name, split))


def _check_columns(
    name: str, spec: dict, model: Any, model_name: str, report: Callable[[tuple, str], None]
) -> None:
    declared = declared_columns(model)
    if declared is None:
        return
    ident = spec.get("identifier")
    if isinstance(ident, dict):
        for kind, column in ident.items():
            loc: tuple = ("audiences", name, "identifier", kind)
            if kind == "user_alias" and isinstance(column, dict):
                column, loc = column.get("name"), (*loc, "name")
            if isinstance(column, str) and column not in declared:
                report(loc, f"column {column!r} is not declared in model {model_name!r}")
    where = spec.get("where")
    if isinstance(where, str) and condition_problem(where) is None:
        for column in sorted(condition_columns(where) - set(declared)):
            report(
                ("audiences", name, "where"),
                f"column {column!r} is not declared in model {model_name!r}",
            )


def _parse_condition(where: str):
    import sqlglot
    from sqlglot import exp

    try:
        parsed = sqlglot.parse(f"SELECT 1 WHERE {where}", read="duckdb")
    except Exception:
        return None
    if len(parsed) != 1 or not isinstance(parsed[0], exp.Select):
        return None
    clause = parsed[0].args.get("where")
    if clause is None or parsed[0].args.get("from") is not None:
        return None
    for key in ("group", "having", "order", "limit", "qualify"):
        if parsed[0].args.get(key) is not None:
            return None
    return clause.this


def condition_problem(where: str) -> str | None:
    """Why ``where`` is not one SQL condition over the model's own columns (else None)."""
    from sqlglot import exp

    condition = _parse_condition(where)
    if condition is None:
        return "not one SQL condition (e.g. lifetime_value >= 1000 AND country = 'FR')"
    if condition.find(exp.Select, exp.Subquery) is not None:
        return "a condition reads the model's own row: subqueries are not allowed"
    if condition.find(exp.AggFunc, exp.Window) is not None:
        return "a condition is about one row: aggregates and window functions are not allowed"
    return None


def condition_columns(where: str) -> set[str]:
    """The column names a condition reads."""
    from sqlglot import exp

    condition = _parse_condition(where)
    if condition is None:
        return set()
    return {c.name for c in condition.find_all(exp.Column) if c.name}


def condition_sql(where: str) -> str:
    """The condition as DuckDB SQL regenerated from its parse: one parenthesised
    expression, whatever the text around it tried."""
    condition = _parse_condition(where)
    if condition is None:
        raise ValueError(condition_problem(where) or "not a condition")
    return f"({condition.sql(dialect='duckdb')})"
