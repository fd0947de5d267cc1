"""The Liquid dialect mapping templates are written in, compiled in one place so that
``headwater validate`` refuses exactly the templates ``serve`` could not render.

A template that is exactly one ``{{ expression }}`` keeps the value's JSON type (the
``json`` filter renders it, and the caller parses it back); anything else renders to text.
"""

from __future__ import annotations

import re
from functools import lru_cache

import orjson
from liquid import Environment, Undefined

_SINGLE_EXPRESSION = re.compile(r"^\s*\{\{(?!.*\{\{)(.*)\}\}\s*$", re.S)


def _json_filter(value: object) -> str:
    if isinstance(value, Undefined) or value is None:
        return "null"
    return orjson.dumps(value, default=str).decode()


_ENV = Environment()
_ENV.filters["json"] = _json_filter


@lru_cache(maxsize=4096)
def compile_template(template: str):
    """(typed, compiled): typed when the template is exactly one expression."""
    single = _SINGLE_EXPRESSION.match(template)
    if single:
        return True, _ENV.from_string("{{ " + single.group(1).strip() + " | json }}")
    return False, _ENV.from_string(template)
