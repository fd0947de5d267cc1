"""Braze's front door, shared by the gateway and the sandbox: reading a request safely (the
body within Braze's 4 MB limit), JSON decoding with a clear error, the key a caller
presents and the check Braze makes of it (401 unknown key, 403 missing permission), and
the JSON answers Braze gives. The key ring is whatever the caller holds (the gateway's in
the state store, the sandbox's in its own), so this module knows Braze's rules and nothing
of where keys are kept."""

from __future__ import annotations

from typing import Protocol, TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import Response

from headwater.bearer import bearer_token
from headwater.braze.errors import (
    MSG_ACCESS_DENIED,
    MSG_BAD_JSON,
    MSG_TOO_LARGE,
    BrazeError,
    msg_invalid_key,
)
from headwater.braze.limits import MAX_BODY_BYTES


class PresentedKey(Protocol):
    name: str

    def allows(self, permission: str) -> bool: ...


K = TypeVar("K", bound=PresentedKey, covariant=True)


class KeyLookup(Protocol[K]):
    def lookup(self, presented: str | None) -> K | None: ...


def json_response(status: int, body: object, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer, as every Braze-shaped route gives them."""
    return Response(orjson.dumps(body), status, headers=headers, media_type="application/json")


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The raw body, refusing (413) anything over ``limit`` before reading it all."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BrazeError(413, MSG_TOO_LARGE)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BrazeError(413, MSG_TOO_LARGE)
        chunks.append(chunk)
    return b"".join(chunks)


def decode_json(body: bytes) -> object:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BrazeError(400, MSG_BAD_JSON) from None


def bearer_key(request: Request) -> str | None:
    return bearer_token(request.headers.get("authorization"))


def presented_key(request: Request, body: object) -> tuple[str | None, bool]:
    """The key a caller of Braze's own API sent, and whether it was well formed: a Bearer
    header, else the legacy ``api_key`` (query string or JSON body) that Braze still takes."""
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


def authorize(request: Request, keys: KeyLookup[K], permission: str) -> K:
    presented = bearer_key(request)
    key = keys.lookup(presented)
    if key is None:
        raise BrazeError(401, msg_invalid_key(presented))
    if not key.allows(permission):
        raise BrazeError(403, MSG_ACCESS_DENIED)
    return key
