"""Which content values a stream's objects carry (a share link, a share code), turned into
``stream_content`` rows committed with the events that carried them; the table and its
read-side cache live in ``headwater.state.content``."""

from __future__ import annotations

import time
from collections.abc import Iterable

import orjson

from headwater.streams.mapping import MappedObject


def user_id_of(obj: dict) -> str | None:
    for key in ("external_id", "braze_id", "email"):
        value = obj.get(key)
        if isinstance(value, str) and value:
            return value
    alias = obj.get("user_alias")
    if isinstance(alias, dict) and alias.get("alias_name"):
        return str(alias["alias_name"])
    return None


def content_rows(stream: str, names: Iterable[str], objects: Iterable[MappedObject]) -> list[dict]:
    """The content values in these objects: attributes by name, and event properties by
    name (a share link often arrives as an event property). Later objects win."""
    wanted = set(names)
    now = time.time()
    found: dict[tuple[str, str], object] = {}
    for mapped in objects:
        user = user_id_of(mapped.obj)
        if user is None:
            continue
        source = mapped.obj if mapped.kind == "attributes" else mapped.obj.get("properties") or {}
        for name in wanted:
            if name in source and source[name] is not None:
                found[(user, name)] = source[name]
    return [
        {"stream": stream, "user_id": user, "name": name, "value": orjson.dumps(value),
         "updated_at": now}
        for (user, name), value in found.items()
    ]  # fmt: skip
