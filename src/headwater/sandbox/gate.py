"""What every Braze call goes through before its endpoint sees it, in Braze's order:
faults, authentication and permission, the rate limit, the body (size, JSON). Errors
come out Braze-shaped, and every answer carries the rate-limit headers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from fastapi import Request
from fastapi.responses import Response
from starlette.requests import ClientDisconnect

from headwater.braze.endpoints import ENDPOINTS, Endpoint, permission_for
from headwater.braze.errors import (
    MSG_ACCESS_DENIED,
    MSG_BAD_JSON,
    MSG_RATE_LIMITED,
    MSG_SERVER_ERROR,
    BrazeError,
    msg_invalid_key,
)
from headwater.braze.frontdoor import decode_json, json_response, presented_key, read_body
from headwater.sandbox.keys import ApiKey

if TYPE_CHECKING:
    from headwater.sandbox.app import Sandbox

Work = Callable[[object, ApiKey], dict]


class DroppedResponse(Response):
    """Start an answer, then hang up: the client sees a connection dropped mid-response."""

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope, receive, send) -> None:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"64")]}
        )


async def handle(request: Request, name: str, work: Work) -> Response:
    """Run ``work(body, key)`` for endpoint ``name`` as Braze would, or refuse as Braze does."""
    sandbox: Sandbox = request.app.state.sandbox
    endpoint: Endpoint = ENDPOINTS[name]
    fault, fault_status = sandbox.faults.pick()
    if sandbox.faults.latency_seconds:
        await asyncio.sleep(sandbox.faults.latency_seconds)
    if fault == "drop":
        return DroppedResponse()

    try:
        raw = await read_body(request) if request.method != "GET" else b""
    except BrazeError as exc:  # over Braze's limit, declared or sent
        return json_response(exc.status, exc.body(), sandbox.limiter.peek(endpoint))
    except ClientDisconnect:  # the caller hung up mid-body: nothing was received, nothing done
        return Response(status_code=400)
    body: object = None
    parse_error = None
    if raw:
        try:
            body = decode_json(raw)
        except BrazeError as exc:  # answered after the key and the rate limit, as Braze does
            parse_error = exc.message

    secret, well_formed = presented_key(request, body)
    key = sandbox.keys.lookup(secret) if (secret and well_formed) else None
    if key is None:
        return json_response(
            401, {"message": msg_invalid_key(secret)}, sandbox.limiter.peek(endpoint)
        )
    if not key.allows(permission_for(endpoint)):
        return json_response(403, {"message": MSG_ACCESS_DENIED}, sandbox.limiter.peek(endpoint))

    allowed, headers = sandbox.limiter.take(endpoint)
    if not allowed or fault_status == 429:
        return json_response(429, {"message": MSG_RATE_LIMITED}, headers)
    if fault_status:
        return json_response(fault_status, {"message": MSG_SERVER_ERROR}, headers)
    if parse_error or (request.method != "GET" and not isinstance(body, dict)):
        return json_response(400, {"message": parse_error or MSG_BAD_JSON}, headers)
    try:
        answer = work(body if body is not None else dict(request.query_params), key)
    except BrazeError as exc:
        return json_response(exc.status, exc.body(), headers)
    return json_response(endpoint.success_status, answer, headers)
