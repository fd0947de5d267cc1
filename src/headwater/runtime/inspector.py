"""The event inspector: the last N payloads in (as received) and out (as sent to Braze)
per stream, kept in memory only, with secrets redacted on the way out, so what the console
shows can never leak a token."""

from __future__ import annotations

import re
import time
from collections import deque
from typing import Any

from headwater.config.streams import DEFAULT_INSPECTOR_SIZE

REDACTED = "[redacted]"
SECRET_NAME = re.compile(
    r"pass(word)?|secret|token|api[_-]?key|authorization|signature|cookie", re.I
)
MAX_DEPTH = 20


def redact(value: Any, depth: int = 0) -> Any:
    """A copy of ``value`` with every field whose name looks secret replaced."""
    if depth > MAX_DEPTH:
        return "…"
    if isinstance(value, dict):
        return {
            k: (REDACTED if isinstance(k, str) and SECRET_NAME.search(k) else redact(v, depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v, depth + 1) for v in value]
    return value


def redact_headers(headers: dict[str, str], extra_secret: str | None = None) -> dict[str, str]:
    secret = extra_secret.lower() if extra_secret else None
    return {
        k: (REDACTED if SECRET_NAME.search(k) or k.lower() == secret else v)
        for k, v in headers.items()
    }


class Inspector:
    def __init__(self, default_size: int = DEFAULT_INSPECTOR_SIZE) -> None:
        self._default = default_size
        self._sizes: dict[str, int] = {}
        self._entries: dict[str, deque] = {}
        self._seq = 0

    def configure(self, stream: str, size: int) -> None:
        self._sizes[stream] = size

    def record(self, stream: str, direction: str, payload: Any, **meta: Any) -> None:
        size = self._sizes.get(stream, self._default)
        if size <= 0:
            return
        entries = self._entries.get(stream)
        if entries is None or entries.maxlen != size:
            entries = self._entries[stream] = deque(entries or (), maxlen=size)
        self._seq += 1
        entries.append(
            {"seq": self._seq, "at": time.time(), "direction": direction,
             "payload": payload, **meta}
        )  # fmt: skip

    def recent(self, stream: str, limit: int | None = None) -> list[dict]:
        entries = list(self._entries.get(stream, ()))
        entries.reverse()  # newest first
        if limit:
            entries = entries[:limit]
        # Redacted when read, not when written: the hot intake path only keeps a reference.
        return [{**e, "payload": redact(e["payload"])} for e in entries]
