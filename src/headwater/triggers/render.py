"""A trigger's properties for one person: each Liquid template rendered over the
person's record as ``customer`` (``{{ customer.company_name }}``), with the same dialect
as the streams' mappings (``headwater.config.templates``): a template that is exactly one
expression keeps its JSON type.

Every failure names the person and the property, and costs only that person's send."""

from __future__ import annotations

import datetime as _dt
import decimal

import orjson
from liquid.exceptions import LiquidError

from headwater.braze.limits import MAX_TRIGGER_PROPERTIES_BYTES
from headwater.config.templates import compile_template


class RenderError(Exception):
    """One person's properties could not be made; the message says whose and which."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def _plain(value: object) -> object:
    """Warehouse values Liquid and JSON understand: times as ISO text, decimals as
    numbers."""
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def render_properties(templates: dict[str, str], record: dict, person: str) -> dict:
    """The rendered properties, or RenderError naming ``person`` and the property.

    Over 50 KB (Braze's limit for trigger properties) is refused here, before it could
    sink the other 49 recipients of the request."""
    customer = _plain(record)
    properties: dict = {}
    for name, template in templates.items():
        try:
            typed, compiled = compile_template(template)
            text = compiled.render(customer=customer)
        except (LiquidError, RecursionError, ValueError, TypeError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise RenderError(
                f"person {person!r}: property {name!r}: {reason}", field=name
            ) from None
        if typed:
            try:
                value = orjson.loads(text)
            except orjson.JSONDecodeError:
                value = text
        else:
            value = text
        if value is not None and value != "":
            properties[name] = value
    try:
        size = len(orjson.dumps(properties))
    except TypeError:  # nested past what JSON encoders (and Braze) take
        raise RenderError(f"person {person!r}: properties are nested too deeply") from None
    if size > MAX_TRIGGER_PROPERTIES_BYTES:
        largest = max(properties, key=lambda k: len(orjson.dumps(properties[k])))
        raise RenderError(
            f"person {person!r}: properties are {size:,} bytes, over Braze's "
            f"{MAX_TRIGGER_PROPERTIES_BYTES:,}-byte (50 KB) limit (largest: {largest!r})",
            field=largest,
        )
    return properties
