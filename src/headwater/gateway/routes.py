"""The Braze-compatible intake partners are pointed at instead of Braze.

``POST /users/track`` answers exactly as Braze would (same validation, same 201 bodies with
``*_processed`` counts and per-object errors, same fatal 400s) but only after the valid
objects are committed to the outbox; delivery happens after the answer. ``POST
/users/export/ids`` is a read, so it is passed straight through to the key's destination.
"""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from headwater.braze.errors import BrazeError
from headwater.braze.frontdoor import authorize, decode_json, json_response, read_body
from headwater.braze.limits import BatchPolicy
from headwater.braze.track import parse_track_request
from headwater.runtime.hub import GATEWAY_STREAM, hub_of
from headwater.state.outbox import OPT_DEDUPE_ATTRIBUTES, OutboxEntry
from headwater.state.seen import content_key

PASSTHROUGH_ERROR = "The destination could not be reached"


async def users_track(request: Request) -> Response:
    hub = hub_of(request)
    key = authorize(request, hub.keys, "users.track")
    body = await read_body(request)
    data = decode_json(body)
    destination = key.destination or hub.settings.default_destination()
    dest = hub.settings.destinations.get(destination)
    policy = BatchPolicy(dest.batch_policy) if dest else BatchPolicy.COMBINED
    parsed = parse_track_request(data, policy=policy)
    stream = f"{GATEWAY_STREAM}:{key.name}"
    options = OPT_DEDUPE_ATTRIBUTES if hub.settings.gateway_dedupe_attributes else 0
    dedupe_events = hub.settings.gateway_dedupe_events
    entries = []
    for kind in ("attributes", "events", "purchases"):
        keyed = dedupe_events and kind != "attributes"
        for _index, obj in getattr(parsed, kind):
            # Sorted keys: the stored payload doubles as the canonical form the duplicate
            # check hashes, so each object is serialised once.
            payload = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
            seen_key = content_key(stream, kind, payload) if keyed else None
            entries.append(OutboxEntry(stream, destination, kind, payload, options, seen_key))
    await hub.outbox.enqueue(entries)
    hub.inspector.record(GATEWAY_STREAM, "in", data, raw=body, key=key.name, objects=len(entries))
    status, response = parsed.response()
    return json_response(status, response)


async def users_export_ids(request: Request) -> Response:
    hub = hub_of(request)
    key = authorize(request, hub.keys, "users.export.ids")
    body = await read_body(request)
    decode_json(body)  # malformed JSON is answered here, as Braze would
    destination = hub.settings.destinations.get(
        key.destination or hub.settings.default_destination()
    )
    if destination is None:
        raise BrazeError(503, PASSTHROUGH_ERROR)
    client = hub.passthrough_client()
    try:
        answer = await client.post(
            destination.url.rstrip("/") + "/users/export/ids",
            content=body,
            headers={
                "Authorization": f"Bearer {destination.api_key.get_secret_value()}",
                "Content-Type": "application/json",
            },
        )
    except Exception:
        raise BrazeError(503, PASSTHROUGH_ERROR) from None
    passed = {k: v for k, v in answer.headers.items() if k.lower().startswith("x-ratelimit")}
    return Response(
        answer.content,
        status_code=answer.status_code,
        media_type=answer.headers.get("content-type", "application/json"),
        headers=passed,
    )


# Plain Starlette routes: the hot path skips FastAPI's dependency solving (about a third
# of the per-request cost of a one-event post).
ROUTES = [
    Route("/users/track", users_track, methods=["POST"]),
    Route("/users/export/ids", users_export_ids, methods=["POST"]),
]
# ...and /users/track goes past the middleware stack and router too (headwater.fastpath).
FAST_ROUTES = {("POST", "/users/track"): users_track}
