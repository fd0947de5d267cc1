"""Braze's rules for the attribute names audiences write, checked when the project is
loaded (``load_project(checks=...)``) so ``headwater validate`` names the line."""

from __future__ import annotations

from collections.abc import Callable

from headwater.braze.identifiers import ObjectError
from headwater.braze.track import CONTROL_KEYS, FLAGS, STANDARD_FIELDS
from headwater.braze.values import check_key
from headwater.config.audiences import DEFAULT_ATTRIBUTE, DEFAULT_SPLIT, render_attribute

RESERVED = {*STANDARD_FIELDS, *CONTROL_KEYS, *FLAGS, "external_id", "user_alias", "braze_id"}


def attribute_problem(name: str) -> str | None:
    """Why ``name`` cannot be the custom attribute an audience writes (else None)."""
    if name in RESERVED:
        return f"{name!r} is one of Braze's own fields, not a custom attribute"
    if name != name.strip():
        return f"attribute {name!r} starts or ends with a space"
    try:
        check_key(name, "attribute")
    except ObjectError as exc:
        return exc.type
    return None


def check_audience_attributes(raw: dict, report: Callable[[tuple, str], None]) -> None:
    """Every attribute name each audience's template gives its splits."""
    audiences = raw.get("audiences")
    defaults = raw.get("audience_defaults")
    default = DEFAULT_ATTRIBUTE
    if isinstance(defaults, dict) and isinstance(defaults.get("attribute"), str):
        default = defaults["attribute"]
    for name, spec in audiences.items() if isinstance(audiences, dict) else ():
        if not isinstance(spec, dict) or not isinstance(name, str):
            continue
        template = spec.get("attribute") if isinstance(spec.get("attribute"), str) else default
        splits = spec.get("splits")
        for split in splits if isinstance(splits, dict) and splits else [DEFAULT_SPLIT]:
            if not isinstance(split, str):
                continue
            problem = attribute_problem(render_attribute(template, name, split))
            if problem is not None:
                where = "attribute" if "attribute" in spec else "splits"
                report(("audiences", name, where), problem)
