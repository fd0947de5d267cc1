"""What every Braze call goes through before its endpoint sees it, in Braze's order:
faults, authentication and permission, the rate limit, the body (size, JSON). Errors
come out Braze-shaped, and every answer carries the rate-limit headers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

import orjson
from fastapi import Request
from fastapi.responses import Response
from starlette.requests import ClientDisconnect

from headwater.braze.endpoints import ENDPOINTS, Endpoint, permission_for
from headwater.braze.errors import (
    MSG_ACCESS_DENIED,
    MSG_BAD_JSON,
    MSG_RATE_LIMITED,
    MSG_SERVER_ERROR,
    MSG_TOO_LARGE,
    BrazeError,
    msg_invalid_key,
)
from headwater.braze.limits import MAX_BODY_BYTES
from headwater.sandbox.keys import ApiKey

if TYPE_CHECKING:
    from headwater.sandbox.app import Sandbox

Work = Callable[[object, ApiKey], dict]


def json_response(status: int, body: object, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers=headers, media_type="application/json")


class DroppedResponse(Response):
    """Start an answer, then hang up: the client sees a connection dropped mid-response."""

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope, receive, send) -> None:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"64")]}
        )


def _presented_key(request: Request, body: object) -> tuple[str | None, bool]:
    """The key the caller sent, and whether it was well formed."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or token[0] in "\"'":
            return token or None, False
        return token, True
    legacy = request.query_params.get("api_key")
    if legacy is None and isinstance(body, dict) and isinstance(body.get("api_key"), str):
        legacy = body["api_key"]
    return legacy, legacy is not None


async def handle(request: Request, name: str, work: Work) -> Response:
    """Run ``work(body, key)`` for endpoint ``name`` as Braze would, or refuse as Braze does."""
    sandbox: Sandbox = request.app.state.sandbox
    endpoint: Endpoint = ENDPOINTS[name]
    fault, fault_status = sandbox.faults.pick()
    if sandbox.faults.latency_seconds:
        await asyncio.sleep(sandbox.faults.latency_seconds)
    if fault == "drop":
        return DroppedResponse()

    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return json_response(413, {"message": MSG_TOO_LARGE}, sandbox.limiter.peek(endpoint))
    try:
        raw = await request.body() if request.method != "GET" else b""
    except ClientDisconnect:  # the caller hung up mid-body: nothing was received, nothing done
        return Response(status_code=400)
    if len(raw) > MAX_BODY_BYTES:
        return json_response(413, {"message": MSG_TOO_LARGE}, sandbox.limiter.peek(endpoint))
    body: object = None
    parse_error = None
    if raw:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            parse_error = MSG_BAD_JSON

    secret, well_formed = _presented_key(request, body)
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
