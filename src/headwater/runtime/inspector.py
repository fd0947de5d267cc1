"""The event inspector: the last payloads in (as received) and out (as sent to Braze) per
stream, so an operator can see what a partner sent and what Braze answered.

Given the state store (``engine``, as the hub does), entries go to a table
(``headwater.state.inspector``) from a background thread: every serve process writes
there and every reader sees them all, across restarts, while the intake path only appends
to a list. Without one (tests, tools) they stay in this process's memory.

Two invariants:

* **Memory is bounded in bytes, whatever partners post.** An entry keeps its payload as
  JSON bytes; a payload over ``payload_bytes`` is cut to a copy of about that size (long
  strings shortened, long arrays and objects trimmed, each cut marked with how much was
  left out), so a 4 MB body costs the inspector 64 KB. All streams together keep at most
  ``max_bytes``; past it the oldest entries go. Cutting walks only what it keeps, so a
  body of a million items costs no more than a small one.
* **Nothing read from it shows a secret.** Fields whose name contains one of the redacted
  words (case and ``_``/``-``/``.`` ignored) are replaced when the entries are read.
  Small payloads are kept as the bytes already received and redacted on the way out, so
  the intake path never walks them.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from headwater.config import InspectorConfig
from headwater.config.streams import DEFAULT_INSPECTOR_SIZE
from headwater.state.inspector import read_events, write_events

log = logging.getLogger("headwater.inspector")
FLUSH_SECONDS = 0.5
# After a flush that had more entries than a stream keeps (heavy traffic: the older ones
# were never written), the next waits longer: each flush redacts and rewrites a stream's
# whole worth, and every half second that cost the gateway's writer thread its p99.
BUSY_FLUSH_SECONDS = 2.0

REDACTED = "[redacted]"
# Words that mark a field as secret wherever they appear in its name: `db_pwd`,
# `AWS_ACCESS_KEY_ID`, `privateKey`, `client-credentials`. headwater.yml can add more.
DEFAULT_REDACT = (
    "pass",
    "pwd",
    "secret",
    "token",
    "apikey",
    "accesskey",
    "privatekey",
    "credential",
    "authorization",
    "signature",
    "cookie",
)
_DEFAULTS = InspectorConfig()  # headwater.yml's `inspector:` defaults
DEFAULT_MAX_BYTES = _DEFAULTS.max_bytes  # all streams together
DEFAULT_PAYLOAD_BYTES = _DEFAULTS.payload_bytes  # one stored payload, once cut
MAX_STRING_BYTES = 2048  # a longer string value is cut to this many characters
MAX_DEPTH = 20
CUT_FIELDS = "…"  # the key that marks fields left out of an object
_SEPARATORS = re.compile(r"[\s_.\-]+")


def _normalise(name: str) -> str:
    return _SEPARATORS.sub("", name.lower())


class Redactor:
    """Decides which field names are secret: a substring match, case and separators
    ignored, so ``pwd`` covers ``DB_PWD`` and ``accesskey`` covers ``access_key_id``."""

    def __init__(self, words: Iterable[str] = ()) -> None:
        normalised = {_normalise(w) for w in (*DEFAULT_REDACT, *words)}
        self.words = tuple(sorted(w for w in normalised if w))
        self._pattern = re.compile("|".join(map(re.escape, self.words)))
        self._known: dict[str, bool] = {}  # field names repeat from object to object

    def is_secret(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        secret = self._known.get(name)
        if secret is None:
            if len(self._known) >= 10_000:  # a flood of distinct names: start over
                self._known.clear()
            secret = self._known[name] = self._pattern.search(_normalise(name)) is not None
        return secret

    def redact(self, value: Any, depth: int = 0) -> Any:
        """A copy of ``value`` with every field whose name looks secret replaced."""
        if depth > MAX_DEPTH:
            return "[deeper levels cut]"
        if isinstance(value, dict):
            return {
                k: REDACTED if self.is_secret(k) else self.redact(v, depth + 1)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.redact(v, depth + 1) for v in value]
        return value

    def redact_headers(self, headers: dict[str, str], extra: str | None = None) -> dict[str, str]:
        extra = extra.lower() if extra else None
        return {
            k: REDACTED if self.is_secret(k) or k.lower() == extra else v
            for k, v in headers.items()
        }


_DEFAULT_REDACTOR = Redactor()


def redact(value: Any) -> Any:
    """``value`` with the built-in secret names redacted."""
    return _DEFAULT_REDACTOR.redact(value)


class _Cutter:
    """Copies a decoded payload within a byte budget (its JSON size, roughly), redacting
    as it goes and leaving a marker wherever something was left out. It stops walking
    where it stops keeping, so its cost is bounded by the budget, not the payload."""

    def __init__(self, budget: int, redactor: Redactor) -> None:
        self.left = budget
        self.redactor = redactor

    def copy(self, value: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            self.left -= 20
            return "[deeper levels cut]"
        if isinstance(value, dict):
            return self._object(value, depth)
        if isinstance(value, list):
            return self._array(value, depth)
        if isinstance(value, str):
            return self._string(value)
        self.left -= 8
        return value

    def _object(self, value: dict, depth: int) -> dict:
        out: dict[str, Any] = {}
        self.left -= 2
        for kept, (key, item) in enumerate(value.items()):
            if self.left <= 0:
                out[CUT_FIELDS] = f"[{len(value) - kept} more fields cut]"
                break
            name = key if isinstance(key, str) else str(key)
            self.left -= len(name) + 4
            if self.redactor.is_secret(name):
                self.left -= len(REDACTED)
                out[name] = REDACTED
            else:
                out[name] = self.copy(item, depth + 1)
        return out

    def _array(self, value: list, depth: int) -> list:
        out: list[Any] = []
        self.left -= 2
        for kept, item in enumerate(value):
            if self.left <= 0:
                out.append(f"[{len(value) - kept} more items cut]")
                break
            self.left -= 1
            out.append(self.copy(item, depth + 1))
        return out

    def _string(self, value: str) -> str:
        keep = max(0, min(MAX_STRING_BYTES, self.left))
        if len(value) <= keep:
            self.left -= len(value) + 2
            return value
        head = value[:keep]
        cut = len(value.encode("utf-8", "replace")) - len(head.encode("utf-8", "replace"))
        self.left -= keep + 32
        return f"{head}…[{cut} more bytes cut]"


@dataclass(slots=True)
class _Entry:
    seq: int
    stream: str
    meta: dict[str, Any]
    payload: bytes  # JSON
    cut: bool  # already a redacted, bounded copy

    @property
    def size(self) -> int:
        return len(self.payload) + 200  # the summary beside it, roughly


class Inspector:
    """Per stream, the newest ``size`` entries (``configure``), within ``max_bytes`` in all."""

    def __init__(
        self,
        default_size: int = DEFAULT_INSPECTOR_SIZE,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        payload_bytes: int = DEFAULT_PAYLOAD_BYTES,
        redact: Iterable[str] = (),
        clock=time.time,
        engine=None,
        writer: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        self._default = default_size
        self.max_bytes = max_bytes
        self.payload_bytes = payload_bytes
        self.redactor = Redactor(redact)
        self._clock = clock
        self._sizes: dict[str, int] = {}
        self._entries: dict[str, deque[_Entry]] = {}
        self._seq = 0
        self._lock = threading.Lock()
        self.bytes = 0  # what the entries held account for
        self.engine = engine  # the state store the entries go to (None: memory only)
        # Runs a write on the store's one writer thread (``Outbox.run_with_writers``): a
        # second thread racing it for SQLite's lock would sleep in the busy handler.
        self._writer = writer or (lambda fn: fn())
        self._pending: deque[_Entry] = deque()
        self._pending_bytes = 0
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Inspector:
        """Write recorded entries to the store every ``FLUSH_SECONDS`` from a thread."""
        if self.engine is not None and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="inspector", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()

    def _run(self) -> None:
        wait = FLUSH_SECONDS
        while not self._stop.wait(wait):
            try:
                busy = self.flush()
            except Exception as exc:  # a busy store: the entries wait for the next round
                log.warning("inspector entries not written yet: %s", type(exc).__name__)
                busy = False
            wait = BUSY_FLUSH_SECONDS if busy else FLUSH_SECONDS

    def flush(self) -> bool:
        """Redact what was recorded and write it to the store (a no-op without one).
        True when some stream had more entries than it keeps (heavy traffic)."""
        if self.engine is None:
            return False
        with self._flush_lock:
            with self._lock:
                taken = list(self._pending)
                self._pending.clear()
                self._pending_bytes = 0
            newest = self._newest(taken)
            entries = [
                (e.stream, e.meta, e.payload if e.cut else self._redacted(e.payload))
                for e in newest
            ]
            try:
                self._writer(
                    lambda: write_events(
                        self.engine, entries, self._sizes, self.max_bytes, self._default
                    )
                )
            except Exception:
                with self._lock:  # back in front, for the next round
                    self._pending.extendleft(reversed(taken))
                    self._pending_bytes += sum(e.size for e in taken)
                raise
            return len(newest) < len(taken)

    def _newest(self, taken: list[_Entry]) -> list[_Entry]:
        """Per stream only the entries the table would keep: under heavy traffic the
        older ones of a round would be written only to be trimmed at once."""
        kept: dict[str, int] = {}
        out = []
        for entry in reversed(taken):
            count = kept.get(entry.stream, 0)
            if count < self._sizes.get(entry.stream, self._default):
                kept[entry.stream] = count + 1
                out.append(entry)
        out.reverse()
        return out

    def _redacted(self, payload: bytes) -> bytes:
        return orjson.dumps(self.redactor.redact(orjson.loads(payload)))

    def configure(self, stream: str, size: int) -> None:
        self._sizes[stream] = size

    def record(
        self,
        stream: str,
        direction: str,
        payload: Any = None,
        *,
        raw: bytes | None = None,
        **meta: Any,
    ) -> None:
        """Keep one payload: ``raw`` is its JSON as received (kept as is when small, so
        intake pays nothing), ``payload`` the decoded value (cut when ``raw`` is large)."""
        size = self._sizes.get(stream, self._default)
        if size <= 0:
            return
        data = orjson.dumps(payload) if raw is None else raw
        summary = {"bytes": len(data), **meta}
        cut = len(data) > self.payload_bytes
        if cut:
            value = orjson.loads(data) if payload is None else payload
            data = orjson.dumps(_Cutter(self.payload_bytes, self.redactor).copy(value))
            summary["truncated"] = True
        summary.update(at=self._clock(), direction=direction)
        with self._lock:
            self._seq += 1
            entry = _Entry(self._seq, stream, summary, data, cut)
            if self.engine is not None:  # the flush thread writes it; memory stays bounded
                self._pending.append(entry)
                self._pending_bytes += entry.size
                while self._pending_bytes > self.max_bytes and len(self._pending) > 1:
                    self._pending_bytes -= self._pending.popleft().size
                return
            entries = self._entries.setdefault(stream, deque())
            entries.append(entry)
            self.bytes += entry.size
            while len(entries) > size:
                self.bytes -= entries.popleft().size
            while self.bytes > self.max_bytes:
                self._drop_oldest()

    def _drop_oldest(self) -> None:
        oldest = min(
            (entries for entries in self._entries.values() if entries),
            key=lambda entries: entries[0].seq,
        )
        self.bytes -= oldest.popleft().size

    def recent(self, stream: str, limit: int | None = None) -> list[dict]:
        """The newest entries first, secrets redacted."""
        if self.engine is not None:
            self.flush()  # what this process recorded a moment ago, too
            return read_events(self.engine, stream, limit or self._sizes.get(stream, self._default))
        with self._lock:
            entries = list(self._entries.get(stream, ()))
        entries.reverse()
        if limit:
            entries = entries[:limit]
        return [self._show(e) for e in entries]

    def _show(self, entry: _Entry) -> dict:
        payload = orjson.loads(entry.payload)
        if not entry.cut:
            payload = self.redactor.redact(payload)
        return {"seq": entry.seq, **entry.meta, "payload": payload}
