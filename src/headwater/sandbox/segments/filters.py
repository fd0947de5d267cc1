"""Segment filters: which profiles a sandbox segment holds. Braze's segment builder has
hundreds of filters; the sandbox keeps a small language that covers tests and demos:

    {"attribute": "tier", "equals": "gold"}          a custom attribute
    {"field": "country", "in": ["FR", "DE"]}          a standard profile field
    {"attribute": "vip", "exists": true}
    {"field": "random_bucket", "less_than": 1000}     also greater_than (numbers only)
    {"all": [...]}, {"any": [...]}, {"not": {...}}
    null / absent                                     every user

A filter is checked once when the segment is defined (``check_filter``), then compiled to
a predicate over profile dicts (``compile_filter``)."""

from __future__ import annotations

from collections.abc import Callable

from headwater.braze.profile import EXPORT_FIELDS

MAX_DEPTH = 20
MAX_NODES = 1000
_OPS = ("equals", "in", "exists", "less_than", "greater_than")

Predicate = Callable[[dict], bool]


class FilterError(ValueError):
    """A filter the sandbox cannot read; the message names where (``all[1].in``)."""


def check_filter(spec: object) -> None:
    _check(spec, "filter", 0, [0])


def _check(spec: object, where: str, depth: int, nodes: list[int]) -> None:
    nodes[0] += 1
    if depth > MAX_DEPTH or nodes[0] > MAX_NODES:
        raise FilterError(f"{where}: filters nest at most {MAX_DEPTH} deep, {MAX_NODES} in all")
    if spec is None:
        return
    if not isinstance(spec, dict):
        raise FilterError(f"{where}: a filter is an object")
    for combinator in ("all", "any"):
        if combinator in spec:
            if len(spec) != 1 or not isinstance(spec[combinator], list):
                raise FilterError(f"{where}.{combinator}: an array of filters, alone")
            for i, sub in enumerate(spec[combinator]):
                _check(sub, f"{where}.{combinator}[{i}]", depth + 1, nodes)
            return
    if "not" in spec:
        if len(spec) != 1:
            raise FilterError(f"{where}.not: one filter, alone")
        _check(spec["not"], f"{where}.not", depth + 1, nodes)
        return
    subject = [k for k in ("attribute", "field") if k in spec]
    if len(subject) != 1 or not isinstance(spec[subject[0]], str):
        raise FilterError(f"{where}: name one 'attribute' (custom) or one 'field' (standard)")
    if subject[0] == "field" and spec["field"] not in EXPORT_FIELDS:
        raise FilterError(f"{where}.field: unknown profile field {spec['field'][:100]!r}")
    ops = [k for k in spec if k in _OPS]
    extra = set(spec) - {subject[0], *_OPS}
    if len(ops) != 1 or extra:
        raise FilterError(f"{where}: exactly one of {', '.join(_OPS)}")
    op, value = ops[0], spec[ops[0]]
    if op == "in" and not isinstance(value, list):
        raise FilterError(f"{where}.in: an array of values")
    if op == "exists" and not isinstance(value, bool):
        raise FilterError(f"{where}.exists: true or false")
    if op in ("less_than", "greater_than") and (
        isinstance(value, bool) or not isinstance(value, int | float)
    ):
        raise FilterError(f"{where}.{op}: a number")


def _hashable(value: object) -> bool:
    return isinstance(value, str | int | float | bool) or value is None


def compile_filter(spec: object) -> Predicate:
    """A predicate over profile dicts (``spec`` already checked)."""
    if spec is None:
        return lambda _p: True
    if "all" in spec:
        parts = [compile_filter(s) for s in spec["all"]]
        return lambda p: all(f(p) for f in parts)
    if "any" in spec:
        parts = [compile_filter(s) for s in spec["any"]]
        return lambda p: any(f(p) for f in parts)
    if "not" in spec:
        inner = compile_filter(spec["not"])
        return lambda p: not inner(p)
    if "attribute" in spec:
        name = spec["attribute"]

        def get(p: dict) -> object:
            return (p.get("custom_attributes") or {}).get(name)
    else:
        name = spec["field"]

        def get(p: dict) -> object:
            return p.get(name)

    if "equals" in spec:
        wanted = spec["equals"]
        return lambda p: (v := get(p)) == wanted and type(v) is type(wanted)
    if "in" in spec:
        values = spec["in"]
        if all(_hashable(v) for v in values):
            allowed = set(values)
            return lambda p: _hashable(v := get(p)) and v is not None and v in allowed
        return lambda p: get(p) in values
    if "exists" in spec:
        present = spec["exists"]
        return lambda p: (get(p) is not None) == present
    bound = spec.get("less_than", spec.get("greater_than"))
    below = "less_than" in spec

    def compare(p: dict) -> bool:
        v = get(p)
        if isinstance(v, bool) or not isinstance(v, int | float):
            return False
        return v < bound if below else v > bound

    return compare
