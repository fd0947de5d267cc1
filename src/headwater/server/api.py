"""Read endpoints around the streams: Connected Content, the event inspector and stream
counters. The inspector and counters need a gateway key with ``streams.read``; content
needs the stream's own content token (Braze's Connected Content sends it as a header or a
``token`` query parameter)."""

from __future__ import annotations

import asyncio
import hmac

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from headwater.braze.errors import BrazeError
from headwater.braze.frontdoor import authorize, bearer_key, json_response
from headwater.runtime.hub import GATEWAY_STREAM, hub_of
from headwater.state.dead_letters import count_dead_letters

READ_PERMISSION = "streams.read"
MAX_INSPECTOR_LIMIT = 10_000


async def connected_content(request: Request) -> Response:
    stream_name = request.path_params["stream_name"]
    user_id = request.path_params["user_id"]
    hub = hub_of(request)
    stream = hub.settings.streams.get(stream_name)
    if stream is None or stream.content is None:
        raise BrazeError(404, f"No content for stream {stream_name!r}")
    presented = bearer_key(request) or request.query_params.get("token") or ""
    expected = stream.content.token.get_secret_value()
    if not hmac.compare_digest(presented.encode(), expected.encode()):
        raise BrazeError(401, "Unauthorized")
    data = hub.content.get(stream_name, user_id)
    if data is None:
        raise BrazeError(404, "Unknown user")
    return json_response(200, data)


def _known(hub, stream_name: str) -> None:
    if stream_name != GATEWAY_STREAM and stream_name not in hub.settings.streams:
        raise BrazeError(404, f"No stream named {stream_name!r}")


async def stream_events(request: Request) -> Response:
    stream_name = request.path_params["stream_name"]
    try:
        limit = int(request.query_params.get("limit", "50"))
    except ValueError:
        raise BrazeError(400, "limit must be an integer") from None
    hub = hub_of(request)
    authorize(request, hub.keys, READ_PERMISSION)
    _known(hub, stream_name)
    limit = max(1, min(limit, MAX_INSPECTOR_LIMIT))
    # Decoding and redacting up to the inspector's whole budget: off the event loop.
    events = await asyncio.to_thread(hub.inspector.recent, stream_name, limit)
    return json_response(200, {"stream": stream_name, "events": events})


async def stream_stats(request: Request) -> Response:
    stream_name = request.path_params["stream_name"]
    hub = hub_of(request)
    authorize(request, hub.keys, READ_PERMISSION)
    _known(hub, stream_name)
    counters = hub.counters.read()
    if stream_name == GATEWAY_STREAM:
        merged: dict[str, int] = {}
        for name, values in counters.items():
            if name.startswith(GATEWAY_STREAM + ":"):
                for key, value in values.items():
                    merged[key] = merged.get(key, 0) + value
        values = merged
    else:
        values = counters.get(stream_name, {})
    return json_response(
        200,
        {
            "stream": stream_name,
            "counters": values,
            "dead_letters": count_dead_letters(
                hub.engine, None if stream_name == GATEWAY_STREAM else stream_name
            ),
            "outbox_depth": hub.outbox.depth(),
        },
    )


async def healthz(_request: Request) -> Response:
    return json_response(200, {"status": "ok"})


ROUTES = [
    Route("/content/{stream_name}/{user_id:path}", connected_content, methods=["GET"]),
    Route("/api/streams/{stream_name}/events", stream_events, methods=["GET"]),
    Route("/api/streams/{stream_name}/stats", stream_stats, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
]
