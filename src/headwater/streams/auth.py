"""Webhook authentication: Bearer token, HTTP Basic password, or an HMAC-SHA256 signature
of the raw body. Every comparison is constant-time (``hmac.compare_digest``), so response
times tell an attacker nothing about how much of a guess was right.

A stream may also have a ``test_token``: a request proven with it (as the bearer token, the
basic password, or the HMAC secret) is routed to the stream's test destination.

An HMAC stream with a ``timestamp_header`` signs the time too: a correctly signed request
whose time is outside the tolerance is ``STALE``, and the check hands back the signature
and until when it is valid, for the caller to refuse a second use (``state.signatures``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from headwater.bearer import bearer_token
from headwater.config.streams import BasicAuth, BearerAuth, HmacAuth, StreamConfig


class AuthResult(Enum):
    DENIED = "denied"
    STALE = "stale"  # signed with the secret, but its timestamp is outside the tolerance
    PRODUCTION = "production"
    TEST = "test"


@dataclass(frozen=True)
class AuthCheck:
    result: AuthResult
    signature: bytes | None = None  # a timestamped HMAC: the proven digest, to refuse reuse
    valid_until: float | None = None  # when that signature's timestamp leaves the window


MAX_TIMESTAMP_DIGITS = 12  # Unix seconds until the year 33658; longer is not a time


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


def _digest(secret: str, signed: bytes) -> bytes:
    return hmac.new(secret.encode(), signed, hashlib.sha256).digest()


def _signature_ok(auth: HmacAuth, digest: bytes, presented: str) -> bool:
    expected = digest.hex() if auth.encoding == "hex" else base64.b64encode(digest).decode()
    candidate = presented.strip()
    if auth.prefix and candidate.startswith(auth.prefix):
        candidate = candidate[len(auth.prefix) :]
    if auth.encoding == "hex":
        candidate = candidate.lower()
    return _equal(expected, candidate)


def signed_payload(template: str, timestamp: str, body: bytes) -> bytes:
    """What a timestamped HMAC signs: ``template`` with ``{timestamp}`` and the raw body."""
    before, _, after = template.partition("{body}")
    return (
        before.replace("{timestamp}", timestamp).encode()
        + body
        + after.replace("{timestamp}", timestamp).encode()
    )


def _timestamp(value: str | None) -> int | None:
    if not value or len(value) > MAX_TIMESTAMP_DIGITS or not (value.isascii() and value.isdigit()):
        return None
    return int(value)


def _check_hmac(
    auth: HmacAuth, test: str | None, headers: Mapping[str, str], body: bytes, now: float
) -> AuthCheck:
    presented = headers.get(auth.header.lower())
    if not presented:
        return AuthCheck(AuthResult.DENIED)
    stamp = None
    signed = body
    if auth.timestamp_header:
        raw = headers.get(auth.timestamp_header.lower())
        stamp = _timestamp(raw)
        if stamp is None:
            return AuthCheck(AuthResult.DENIED)
        signed = signed_payload(auth.signed_payload, str(raw), body)
    prod = _digest(auth.secret.get_secret_value(), signed)
    prod_ok = _signature_ok(auth, prod, presented)
    test_digest = _digest(test, signed) if test else None
    test_ok = _signature_ok(auth, test_digest, presented) if test_digest else False
    if not (prod_ok or test_ok):
        return AuthCheck(AuthResult.DENIED)
    result = AuthResult.PRODUCTION if prod_ok else AuthResult.TEST
    if stamp is None:
        return AuthCheck(result)
    if abs(now - stamp) > auth.tolerance_seconds:
        return AuthCheck(AuthResult.STALE)
    return AuthCheck(result, prod if prod_ok else test_digest, stamp + auth.tolerance_seconds)


def check_webhook_auth(
    stream: StreamConfig, headers: Mapping[str, str], body: bytes, now: float | None = None
) -> AuthCheck:
    """Which secret (if any) the request proves it holds. ``headers`` must have
    lower-case names or be case-insensitive; ``now`` (Unix seconds) is for timestamps."""
    auth = stream.auth
    test = stream.test_token.get_secret_value() if stream.test_token else None
    if isinstance(auth, HmacAuth):
        return _check_hmac(auth, test, headers, body, time.time() if now is None else now)
    if isinstance(auth, BearerAuth):
        token = bearer_token(headers.get("authorization"))
        if token is None:
            return AuthCheck(AuthResult.DENIED)
        # Compare against both secrets every time so timing does not reveal which matched.
        prod_ok = _equal(token, auth.token.get_secret_value())
        test_ok = _equal(token, test) if test else False
    else:
        assert isinstance(auth, BasicAuth)
        creds = _basic(headers)
        if creds is None:
            return AuthCheck(AuthResult.DENIED)
        user_ok = _equal(creds[0], auth.username)
        prod_ok = _equal(creds[1], auth.password.get_secret_value()) and user_ok
        test_ok = (_equal(creds[1], test) and user_ok) if test else False
    if prod_ok:
        return AuthCheck(AuthResult.PRODUCTION)
    if test_ok:
        return AuthCheck(AuthResult.TEST)
    return AuthCheck(AuthResult.DENIED)


def sign_body(
    secret: str,
    body: bytes,
    encoding: str = "hex",
    prefix: str = "",
    timestamp: int | str | None = None,
    template: str = "{timestamp}.{body}",
) -> str:
    """The signature a sender computes (with ``timestamp``: over ``template``); used by
    tests, the bench and users' own checks."""
    signed = body if timestamp is None else signed_payload(template, str(timestamp), body)
    digest = _digest(secret, signed)
    text = digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()
    return prefix + text
