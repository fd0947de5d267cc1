"""The key table in memory: one mechanism for the gateway's key ring and the sandbox's.

Every lookup, hit or miss, is answered from a snapshot of the active keys (by hash), so a
flood of unknown keys costs no reads: the snapshot is the negative cache, bounded by the
table's size instead of by how many keys an attacker can make up. The snapshot is read
again once it is ``refresh_seconds`` old, so a revocation (or a new key) reaches a running
server within that. A miss may read it sooner, at most every ``miss_refresh_seconds``
whatever the rate of misses, so a key created a moment ago soon works.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

REFRESH_SECONDS = 1.0  # how long a revocation may take to reach a running server
MISS_REFRESH_SECONDS = 0.25  # misses read the table at most this often (4 reads a second)

K = TypeVar("K")
_NEVER = float("-inf")


def hash_key(secret: str) -> str:
    """What a key table stores and a ``KeyCache`` is looked up by: the key's SHA-256, so
    the table never holds a usable key."""
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyCache(Generic[K]):
    """Records by key hash, loaded by ``load`` (which reads the table once)."""

    def __init__(
        self,
        load: Callable[[], Mapping[str, K]],
        *,
        refresh_seconds: float = REFRESH_SECONDS,
        miss_refresh_seconds: float = MISS_REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._refresh_seconds = refresh_seconds
        self._miss_refresh_seconds = min(miss_refresh_seconds, refresh_seconds)
        self._clock = clock
        self._snapshot: Mapping[str, K] = {}
        self._loaded_at = _NEVER
        self._lock = threading.Lock()

    def get(self, digest: str) -> K | None:
        now = self._clock()
        if now - self._loaded_at >= self._refresh_seconds:
            self._reload(now)
        found = self._snapshot.get(digest)
        if found is None and now - self._loaded_at >= self._miss_refresh_seconds:
            self._reload(now)
            found = self._snapshot.get(digest)
        return found

    def invalidate(self) -> None:
        """Read the table at the next lookup (after this process changed it)."""
        self._loaded_at = _NEVER

    def _reload(self, now: float) -> None:
        seen = self._loaded_at
        # Only the first load waits for another thread's read; later ones keep answering
        # from the snapshot they have while one thread reads.
        if not self._lock.acquire(blocking=seen == _NEVER):
            return
        try:
            if self._loaded_at != seen:  # another thread read it meanwhile
                return
            self._snapshot = self._load()
            self._loaded_at = now
        finally:
            self._lock.release()
