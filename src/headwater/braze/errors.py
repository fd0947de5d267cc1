"""Braze error bodies and statuses, both ways: raised by the sandbox and gateway, and
classified by the client (fatal vs retriable), following singer-sdk's one-place rule.

* BrazeError            -- an answer Braze itself would give (status + body); server side
* BrazeRejectedError    -- FatalError: a 4xx that a retry cannot fix; client side
* BrazeUnavailableError -- RetriableError: 429, 5xx, timeouts, dropped connections
* BrazeSendInDoubtError -- FatalError: a send with no idempotency key whose outcome is
                           unknown (timeout, dropped connection, 500/504): not resent
"""

from __future__ import annotations

from headwater.errors import FatalError, RetriableError

MSG_ACCESS_DENIED = "Access Denied"
MSG_RATE_LIMITED = "Rate limit exceeded"
MSG_MAX_INPUT = "Max Input Length Exceeded"
MSG_NO_VALID_DATA = (
    "Valid data must be provided in the 'attributes', 'events', or 'purchases' fields."
)
MSG_BAD_JSON = "Bad Request"
MSG_TOO_LARGE = "Request body is larger than the 4 MB limit"
MSG_TOO_MANY_IDS = "The max number of external_ids and aliases per request was exceeded"
MSG_NOT_FOUND = "Not Found"
MSG_SERVER_ERROR = "Internal Server Error"


def redact(secret: str | None) -> str:
    """Show just enough of a key to tell two apart, never enough to use it."""
    if not secret:
        return "<missing>"
    return f"{secret[:4]}…" if len(secret) > 12 else "<redacted>"


def msg_invalid_key(key: str | None) -> str:
    return f"Invalid API key: {redact(key)}"


class BrazeError(Exception):
    """An error Braze would answer with: status plus a ``{"message", "errors"?}`` body."""

    def __init__(self, status: int, message: str, errors: list[dict] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors or []

    def body(self) -> dict:
        body: dict = {"message": self.message}
        if self.errors:
            body["errors"] = self.errors
        return body


def is_retriable_status(status: int) -> bool:
    """429 and 5xx are worth retrying (Braze asks for backoff); other 4xx are not."""
    return status in (408, 429) or status >= 500


class BrazeRejectedError(FatalError):
    """Braze refused the request for a reason a retry cannot fix (400, 401, 403, 404, 413)."""

    def __init__(self, status: int, body: object, message: str | None = None) -> None:
        self.status = status
        self.body = body
        text = message or (body.get("message") if isinstance(body, dict) else None) or ""
        super().__init__(f"Braze answered {status}: {text}".rstrip(": "))


class BrazeUnavailableError(RetriableError):
    """Braze is rate limiting or failing; ``retry_after`` is its own hint, in seconds."""

    def __init__(self, status: int | None, message: str, retry_after: float | None = None):
        self.status = status
        self.retry_after = retry_after
        super().__init__(message)


class BrazeSendInDoubtError(FatalError):
    """A message send (campaign/canvas trigger) may or may not have been processed: no
    answer came, or a 500/504 did. Braze has no idempotency key for sends, so resending
    could message people twice; the caller records it as in doubt instead."""

    def __init__(self, status: int | None, message: str) -> None:
        self.status = status
        super().__init__(message)
