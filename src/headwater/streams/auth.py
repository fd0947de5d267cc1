"""Webhook authentication: Bearer token, HTTP Basic password, or an HMAC-SHA256 signature
of the raw body. Every comparison is constant-time (``hmac.compare_digest``), so response
times tell an attacker nothing about how much of a guess was right.

A stream may also have a ``test_token``: a request proven with it (as the bearer token, the
basic password, or the HMAC secret) is routed to the stream's test destination.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from enum import Enum

from headwater.bearer import bearer_token
from headwater.streams.config import BasicAuth, BearerAuth, HmacAuth, StreamConfig


class AuthResult(Enum):
    DENIED = "denied"
    PRODUCTION = "production"
    TEST = "test"


def _equal(a: str | bytes, b: str | bytes) -> bool:
    a = a.encode() if isinstance(a, str) else a
    b = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(a, b)


def _basic(headers: Mapping[str, str]) -> tuple[str, str] | None:
    value = headers.get("authorization", "")
    scheme, _, encoded = value.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def _signature_ok(auth: HmacAuth, secret: str, body: bytes, presented: str) -> bool:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    expected = digest.hex() if auth.encoding == "hex" else base64.b64encode(digest).decode()
    candidate = presented.strip()
    if auth.prefix and candidate.startswith(auth.prefix):
        candidate = candidate[len(auth.prefix) :]
    if auth.encoding == "hex":
        candidate = candidate.lower()
    return _equal(expected, candidate)


def check_webhook_auth(stream: StreamConfig, headers: Mapping[str, str], body: bytes) -> AuthResult:
    """Which secret (if any) the request proves it holds. ``headers`` must have
    lower-case names or be case-insensitive."""
    auth = stream.auth
    test = stream.test_token.get_secret_value() if stream.test_token else None
    if isinstance(auth, BearerAuth):
        token = bearer_token(headers.get("authorization"))
        if token is None:
            return AuthResult.DENIED
        # Compare against both secrets every time so timing does not reveal which matched.
        prod_ok = _equal(token, auth.token.get_secret_value())
        test_ok = _equal(token, test) if test else False
    elif isinstance(auth, BasicAuth):
        creds = _basic(headers)
        if creds is None:
            return AuthResult.DENIED
        user_ok = _equal(creds[0], auth.username)
        prod_ok = _equal(creds[1], auth.password.get_secret_value()) and user_ok
        test_ok = (_equal(creds[1], test) and user_ok) if test else False
    else:
        assert isinstance(auth, HmacAuth)
        presented = headers.get(auth.header.lower())
        if not presented:
            return AuthResult.DENIED
        prod_ok = _signature_ok(auth, auth.secret.get_secret_value(), body, presented)
        test_ok = _signature_ok(auth, test, body, presented) if test else False
    if prod_ok:
        return AuthResult.PRODUCTION
    if test_ok:
        return AuthResult.TEST
    return AuthResult.DENIED


def sign_body(secret: str, body: bytes, encoding: str = "hex", prefix: str = "") -> str:
    """The signature a sender computes; used by tests, the bench and users' own checks."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    text = digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()
    return prefix + text
