"""Signatures of timestamped webhook requests already accepted, each kept until its
timestamp leaves the stream's tolerance, so a captured request cannot be sent again.

They are rows in the state store rather than a set in memory, so the refusal holds across
a restart and across several ``serve`` processes sharing PostgreSQL. A row is keyed by a
16-byte digest of the stream and the signature; past its window a signature is refused as
stale anyway, so expired rows are only deleted now and then to keep the table small.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import Column, Engine, Float, LargeBinary, Table, delete
from sqlalchemy.dialects import postgresql, sqlite

from headwater.state.db import metadata

PRUNE_SECONDS = 60.0  # how often rows past their window are deleted
_NEVER = float("-inf")

used_signatures = Table(
    "webhook_signatures",
    metadata,
    Column("key", LargeBinary(16), primary_key=True),
    Column("valid_until", Float, nullable=False),
)


def signature_key(stream: str, signature: bytes) -> bytes:
    return hashlib.blake2b(stream.encode() + b"\0" + signature, digest_size=16).digest()


class SignatureLog:
    """First use of a signature is recorded; any later use is a replay."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        self._pruned_at = _NEVER

    def claim(self, key: bytes, valid_until: float, now: float) -> bool:
        """Record ``key`` until ``valid_until``; False if it was recorded before."""
        with self.engine.begin() as conn:
            if now - self._pruned_at >= PRUNE_SECONDS:
                conn.execute(delete(used_signatures).where(used_signatures.c.valid_until < now))
                self._pruned_at = now
            stmt = (
                self._insert(used_signatures)
                .values(key=key, valid_until=valid_until)
                .on_conflict_do_nothing(index_elements=["key"])
                .returning(used_signatures.c.key)
            )
            return conn.execute(stmt).first() is not None

    def release(self, key: bytes) -> None:
        """Forget ``key``: its request was not committed, so the partner may send it again."""
        with self.engine.begin() as conn:
            conn.execute(delete(used_signatures).where(used_signatures.c.key == key))
