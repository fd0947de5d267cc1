"""Braze's front door: reading a request safely, the body within Braze's 4 MB limit, JSON
decoding with a clear error, and the key check Braze does (401 unknown key, 403 missing
permission). The key ring is whatever the caller holds (the gateway's in the state store),
so this module knows Braze's rules and nothing of where keys are kept."""

from __future__ import annotations

from typing import Protocol, TypeVar

import orjson
from starlette.requests import Request

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


def authorize(request: Request, keys: KeyLookup[K], permission: str) -> K:
    presented = bearer_key(request)
    key = keys.lookup(presented)
    if key is None:
        raise BrazeError(401, msg_invalid_key(presented))
    if not key.allows(permission):
        raise BrazeError(403, MSG_ACCESS_DENIED)
    return key
