"""Endpoints around the streams: Connected Content, the event inspector, stream counters,
and pausing a stream. The inspector and counters need a gateway key with ``streams.read``,
pause and resume ``streams.write``; content needs the stream's own content token (Braze's
Connected Content sends it as a header or a ``token`` query parameter)."""

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
WRITE_PERMISSION = "streams.write"
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


async def _set_paused(request: Request, paused: bool) -> Response:
    """Pause (events still accepted, held in the outbox) or resume (held events delivered
    in order) a stream, for every serve process sharing the state store: what the console's
    button and ``headwater streams pause`` do."""
    from headwater.state.pauses import pause_stream, resume_stream

    stream_name = request.path_params["stream_name"]
    hub = hub_of(request)
    key = authorize(request, hub.keys, WRITE_PERMISSION)
    _known(hub, stream_name)
    # On the outbox's writer thread, in turn with intake's commits and delivery's claims.
    if paused:
        rows = await hub.outbox.write(pause_stream, hub.engine, stream_name, f"key {key.name}")
    else:
        rows = await hub.outbox.write(resume_stream, hub.engine, stream_name)
    hub.outbox.forget_pauses()
    held = "held" if paused else "released"
    return json_response(200, {"stream": stream_name, "paused": paused, held: rows})


async def pause_stream(request: Request) -> Response:
    return await _set_paused(request, True)


async def resume_stream(request: Request) -> Response:
    return await _set_paused(request, False)


async def healthz(_request: Request) -> Response:
    return json_response(200, {"status": "ok"})


ROUTES = [
    Route("/content/{stream_name}/{user_id:path}", connected_content, methods=["GET"]),
    Route("/api/streams/{stream_name}/events", stream_events, methods=["GET"]),
    Route("/api/streams/{stream_name}/stats", stream_stats, methods=["GET"]),
    Route("/api/streams/{stream_name}/pause", pause_stream, methods=["POST"]),
    Route("/api/streams/{stream_name}/resume", resume_stream, methods=["POST"]),
    Route("/healthz", healthz, methods=["GET"]),
]
