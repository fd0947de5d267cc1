"""``POST /hooks/{stream}``: partner webhooks in, Braze objects committed to the outbox.

Order of checks: the stream must exist (404), the body must fit in 4 MB (413), the request
must prove a secret (401; also when a signed timestamp is outside the tolerance), the body
must be JSON (400), its batch must hold at most the stream's ``max_items`` and map to at most
``max_objects`` Braze objects (413), every object the preset maps it to must pass Braze's own
validation (422, listing each failure), and a timestamped signature must not have been used
before (409). Nothing is enqueued unless all of that holds; the 2xx is sent only after the
commit.

Mapping and validation are CPU work that grows with the payload, so they run in a worker
thread: a big body being mapped never keeps the event loop (``/healthz``, other partners'
requests, delivery) waiting.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from headwater.braze.errors import BrazeError
from headwater.braze.frontdoor import json_response, read_body
from headwater.braze.identifiers import ObjectError
from headwater.braze.track import (
    validate_attributes_object,
    validate_event_object,
    validate_purchase_object,
)
from headwater.config.streams import StreamConfig
from headwater.errors import RowError
from headwater.runtime.hub import Hub, hub_of
from headwater.state.content import CONTENT_KEY, content_values
from headwater.state.outbox import OPT_DEDUPE_ATTRIBUTES, OPT_RESOLVE_EMAIL, OutboxEntry
from headwater.state.signatures import signature_key
from headwater.streams.auth import AuthCheck, AuthResult, check_webhook_auth
from headwater.streams.content import content_rows
from headwater.streams.mapping import Mapped, TooMuchWork, dedupe_key, lookup
from headwater.streams.presets import PRESETS

_VALIDATE = {
    "attributes": validate_attributes_object,
    "events": validate_event_object,
    "purchases": validate_purchase_object,
}
_TRUTHY = {"1", "true", "yes", "test", "sandbox"}
STALE = (
    "The signed timestamp is more than {seconds} seconds from now: the request is refused "
    "as delayed or replayed (check the sender's clock)"
)
REPLAYED = "This signed request was received before (same signature); nothing was done"


def _is_test(stream: StreamConfig, auth: AuthResult, payload: object) -> bool:
    if auth is AuthResult.TEST:
        return True
    if stream.test_field:
        flag = lookup(payload, stream.test_field)
        if flag is True or (isinstance(flag, str) and flag.strip().lower() in _TRUTHY):
            return True
        if isinstance(flag, int | float) and not isinstance(flag, bool) and flag:
            return True
    return False


def _validated(mapped: Mapped) -> list[bytes]:
    """Each object checked by Braze's contract and serialised for the outbox; every object
    that fails either is listed in one 422."""
    errors = []
    payloads = []
    positions: dict[str, int] = {}
    for item in mapped.objects:
        index = positions.get(item.kind, 0)
        positions[item.kind] = index + 1
        try:
            item.obj = _VALIDATE[item.kind](item.obj)
            payloads.append(orjson.dumps(item.obj))
        except ObjectError as exc:
            errors.append({"type": exc.type, "input_array": item.kind, "index": index})
        except orjson.JSONEncodeError as exc:  # nested deeper than JSON is written here
            error = f"the object cannot be stored: {exc}"
            errors.append({"type": error, "input_array": item.kind, "index": index})
    if errors:
        raise BrazeError(422, "The payload maps to objects Braze would reject", errors)
    return payloads


@dataclass(slots=True)
class _Prepared:
    mapped: Mapped
    entries: list[OutboxEntry]
    content: list[dict]  # Connected Content rows committed with the entries


def _mapped(stream_name: str, stream: StreamConfig, payload: object) -> Mapped:
    try:
        mapped = PRESETS[stream.preset](payload, stream_name, stream)
    except TooMuchWork as exc:
        raise BrazeError(413, str(exc)) from None
    except RowError as exc:
        error = {"type": exc.reason}
        if exc.field:
            error["field"] = exc.field
        if exc.row is not None:
            error["row"] = exc.row
        raise BrazeError(422, f"The payload cannot be mapped: {exc}", [error]) from None
    if len(mapped.objects) > stream.max_objects:
        raise BrazeError(
            413,
            f"The payload maps to {len(mapped.objects)} objects; this stream takes at most "
            f"{stream.max_objects} per request (its max_objects)",
        )
    return mapped


def _prepare(
    stream_name: str, stream: StreamConfig, payload: object, destination: str, test: bool
) -> _Prepared:
    """Everything from the parsed body to the rows to commit (runs in a worker thread)."""
    mapped = _mapped(stream_name, stream, payload)
    if not mapped.objects:
        return _Prepared(mapped, [], [])
    payloads = _validated(mapped)
    options = (OPT_DEDUPE_ATTRIBUTES if stream.dedupe_attributes else 0) | (
        OPT_RESOLVE_EMAIL if stream.resolve_email else 0
    )
    entries = [
        OutboxEntry(
            stream=stream_name,
            destination=destination,
            kind=item.kind,
            payload=payload,
            options=options,
            dedupe_key=dedupe_key(stream_name, item, position) if stream.dedupe_events else None,
        )
        for position, (item, payload) in enumerate(zip(mapped.objects, payloads, strict=True))
    ]
    rows: list[dict] = []
    if stream.content is not None and not test:
        rows = content_rows(stream_name, stream.content.attributes, mapped.objects)
    return _Prepared(mapped, entries, rows)


async def _claim_signature(
    hub: Hub, stream_name: str, check: AuthCheck, now: float
) -> bytes | None:
    """Record a timestamped signature's first use (in the state store, so restarts and other
    processes see it); a second use is refused with 409."""
    if check.signature is None or check.valid_until is None:
        return None
    key = signature_key(stream_name, check.signature)
    if not await hub.outbox.write(hub.signatures.claim, key, check.valid_until, now):
        raise BrazeError(409, REPLAYED)
    return key


async def receive_webhook(request: Request) -> Response:
    stream_name = request.path_params["stream_name"]
    hub = hub_of(request)
    stream = hub.settings.streams.get(stream_name)
    if stream is None:
        raise BrazeError(404, f"No stream named {stream_name!r}")
    body = await read_body(request)
    now = hub.clock()
    check = check_webhook_auth(stream, request.headers, body, now)
    if check.result is AuthResult.DENIED:
        raise BrazeError(401, "Unauthorized")
    if check.result is AuthResult.STALE:
        raise BrazeError(401, STALE.format(seconds=getattr(stream.auth, "tolerance_seconds", 0)))
    auth = check.result
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BrazeError(400, f"The body is not valid JSON: {exc}") from None
    hub.inspector.record(stream_name, "in", payload, raw=body)
    test = _is_test(stream, auth, payload)
    destination = stream.test_destination if test else stream.destination
    assert destination is not None
    prepared = await asyncio.to_thread(_prepare, stream_name, stream, payload, destination, test)
    if not prepared.entries:
        reason = prepared.mapped.skipped or "nothing to send"
        return json_response(200, {"message": "ignored", "reason": reason})
    extra = [(content_values, prepared.content, CONTENT_KEY)] if prepared.content else []
    replay = await _claim_signature(hub, stream_name, check, now)
    try:
        duplicates = await hub.outbox.enqueue(prepared.entries, extra)
    except Exception:
        if replay is not None:  # not committed: the partner's retry must be let in
            await hub.outbox.write(hub.signatures.release, replay)
        raise
    hub.content.remember(prepared.content)
    return json_response(
        202,
        {
            "message": "accepted",
            "objects": len(prepared.entries) - duplicates,
            "duplicates": duplicates,
            "destination": "test" if test else "production",
        },
    )


ROUTES = [Route("/hooks/{stream_name}", receive_webhook, methods=["POST"])]
