"""Partner presets: one module per partner, each a ``map_payload(payload, stream, config)``
that turns the partner's webhook body into Braze objects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from headwater.config.streams import StreamConfig
from headwater.streams.mapping import Mapped, map_generic
from headwater.streams.presets import actioniq, extole


def _generic(payload: Any, stream: str, config: StreamConfig) -> Mapped:
    assert config.mapping is not None
    return map_generic(payload, config.mapping, config.max_items)


PRESETS: dict[str, Callable[[Any, str, StreamConfig], Mapped]] = {
    "extole": extole.map_payload,
    "actioniq": actioniq.map_payload,
    "generic": _generic,
}
