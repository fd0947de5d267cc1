"""Gateway API keys issued per partner: stored as sha256 hashes, checked in constant time.

A key is shown once, when it is created; only its hash and a short prefix (to tell keys
apart in listings) are kept. Permissions use Braze's names (``users.track``), so a partner
pointed at the gateway gets the same 401/403 answers Braze would give.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

import orjson
from sqlalchemy import Column, Engine, Float, Integer, String, Table, Text, insert, select, update

from headwater.errors import ConfigError
from headwater.state.db import metadata

KEY_PREFIX = "hwk_"
KEY_CACHE_SECONDS = 1.0  # how long a revocation may take to reach a running server
MISS_REFRESH_SECONDS = 0.0  # a miss re-reads the keys (cheap: one indexed query)

gateway_keys = Table(
    "gateway_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("key_hint", String(16), nullable=False),
    Column("permissions", Text, nullable=False),
    Column("destination", String(200), nullable=True),  # None: the gateway's default
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
)


@dataclass(frozen=True)
class GatewayKey:
    """A key's public record; never holds the key itself."""

    id: int
    name: str
    key_hint: str
    permissions: tuple[str, ...]
    destination: str | None
    created_at: float
    revoked_at: float | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def allows(self, permission: str) -> bool:
        return permission in self.permissions


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _record(row) -> GatewayKey:
    return GatewayKey(
        id=row.id,
        name=row.name,
        key_hint=row.key_hint,
        permissions=tuple(orjson.loads(row.permissions)),
        destination=row.destination,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


def create_key(
    engine: Engine, name: str, permissions: list[str], destination: str | None = None
) -> tuple[GatewayKey, str]:
    """Issue a key; returns its record and the plain key, which is never stored."""
    if not name:
        raise ConfigError("a key needs a name")
    if not permissions:
        raise ConfigError("a key needs at least one permission (e.g. --perm users.track)")
    plain = KEY_PREFIX + secrets.token_urlsafe(32)
    with engine.begin() as conn:
        new_id = conn.execute(
            insert(gateway_keys).values(
                name=name,
                key_hash=hash_key(plain),
                key_hint=plain[: len(KEY_PREFIX) + 4],
                permissions=orjson.dumps(sorted(set(permissions))).decode(),
                destination=destination,
                created_at=time.time(),
            )
        ).inserted_primary_key[0]
        row = conn.execute(select(gateway_keys).where(gateway_keys.c.id == new_id)).one()
    return _record(row), plain


def list_keys(engine: Engine, include_revoked: bool = True) -> list[GatewayKey]:
    query = select(gateway_keys).order_by(gateway_keys.c.id)
    if not include_revoked:
        query = query.where(gateway_keys.c.revoked_at.is_(None))
    with engine.connect() as conn:
        return [_record(row) for row in conn.execute(query)]


def revoke_key(engine: Engine, name_or_id: str) -> list[GatewayKey]:
    """Revoke every active key with that name (or that id); returns what was revoked."""
    column = gateway_keys.c.id if name_or_id.isdigit() else gateway_keys.c.name
    value = int(name_or_id) if name_or_id.isdigit() else name_or_id
    with engine.begin() as conn:
        rows = conn.execute(
            select(gateway_keys).where(column == value, gateway_keys.c.revoked_at.is_(None))
        ).all()
        if rows:
            conn.execute(
                update(gateway_keys)
                .where(gateway_keys.c.id.in_([r.id for r in rows]))
                .values(revoked_at=time.time())
            )
    return [_record(row) for row in rows]


class KeyRing:
    """The active keys of a running server, re-read at most every ``KEY_CACHE_SECONDS``
    so a request never waits on the database and a revocation still lands quickly."""

    def __init__(self, engine: Engine, cache_seconds: float = KEY_CACHE_SECONDS) -> None:
        self._engine = engine
        self._cache_seconds = cache_seconds
        self._by_hash: dict[str, tuple[str, GatewayKey]] = {}
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()

    def _refresh(self) -> None:
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(gateway_keys).where(gateway_keys.c.revoked_at.is_(None))
            ).all()
        self._by_hash = {row.key_hash: (row.key_hash, _record(row)) for row in rows}
        self._loaded_at = time.monotonic()

    def lookup(self, presented: str | None) -> GatewayKey | None:
        """The active key matching ``presented``, or None. The stored hash is compared
        with ``hmac.compare_digest`` so the answer time does not depend on the secret."""
        if not presented:
            return None
        if time.monotonic() - self._loaded_at > self._cache_seconds:
            with self._lock:
                if time.monotonic() - self._loaded_at > self._cache_seconds:
                    self._refresh()
        digest = hash_key(presented)
        found = self._by_hash.get(digest)
        if found is None and time.monotonic() - self._loaded_at > MISS_REFRESH_SECONDS:
            # A key created a moment ago works at once; unknown keys cost one read at most
            # every MISS_REFRESH_SECONDS, whatever their rate.
            with self._lock:
                self._refresh()
            found = self._by_hash.get(digest)
        if found is None or not hmac.compare_digest(found[0], digest):
            return None
        return found[1]
