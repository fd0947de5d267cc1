"""Event triggers: which triggers a delivered stream event matches, and firing them.

A trigger's ``when: {stream, event, where}`` matches an event of that stream (``gateway``
for ``/users/track``) with that name whose properties equal every ``where`` value (dotted
names reach nested properties). The event's entry key is where it was durably kept, the
outbox message and the event's place in it (``outbox:<id>:<index>``), so a redelivered
event (delivery is at-least-once) never fires a trigger twice: the ledger in
``headwater.state.triggers`` sees the same key.

In templates the event is ``customer``'s view of the moment: ``{{ customer.<property> }}``
reads the event's properties, ``{{ customer.event_name }}`` and ``{{ customer.time }}``
its name and time.
"""

from __future__ import annotations

import threading

from headwater.config import Project
from headwater.config.triggers import TriggerConfig
from headwater.triggers.fire import TriggerReport, _fire_all

_MISSING = object()


def _lookup(properties: dict, dotted: str) -> object:
    value: object = properties
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def matches(trigger: TriggerConfig, stream: str, event: dict) -> bool:
    when = trigger.when
    if when.stream is None or when.stream != stream:
        return False
    if when.event is not None and event.get("name") != when.event:
        return False
    properties = event.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    for name, expected in when.where.items():
        found = _lookup(properties, name)
        if (
            found is _MISSING
            or found != expected
            or isinstance(found, bool) != isinstance(expected, bool)
        ):
            return False
    return True


def event_entry(event: dict, message_id: int | str, index: int) -> tuple[str, dict]:
    """(entry key, entry) for one event as the outbox kept it."""
    identifier = {k: event[k] for k in ("external_id", "user_alias") if event.get(k) is not None}
    person = identifier.get("external_id") or str(identifier.get("user_alias") or "?")
    properties = event.get("properties") if isinstance(event.get("properties"), dict) else {}
    record = {**properties, "event_name": event.get("name"), "time": event.get("time")}
    return f"outbox:{message_id}:{index}", {
        "person_id": person,
        "identifier": identifier,
        "record": record,
    }


def fire_on_events(
    project: Project,
    stream: str,
    events: list[tuple[int | str, int, dict]],
    *,
    stop: threading.Event | None = None,
    client=None,
) -> TriggerReport:
    """Fire the triggers these delivered events match: ``(outbox message id, index of the
    event in it, the event object)``. Each (trigger, event) is sent at most once."""
    import asyncio

    work = []
    for name, trigger in project.triggers.items():
        keyed = [
            event_entry(event, message_id, index)
            for message_id, index, event in events
            if matches(trigger, stream, event)
        ]
        if keyed:
            work.append((name, trigger, keyed))
    return asyncio.run(_fire_all(project, work, stop, client))
