"""Reading ``Authorization: Bearer <token>``, the one way everywhere (gateway keys, stream
tokens, the sandbox's control token): the scheme is case-insensitive (RFC 7235), so
``bearer`` works as ``Bearer`` does, and a bare token without a scheme is not a bearer
token."""

from __future__ import annotations


def bearer_token(header: str | None) -> str | None:
    """The token of a Bearer ``Authorization`` header value, or None."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None
