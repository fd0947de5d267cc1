"""Gateway API keys issued per partner: stored as sha256 hashes, checked in constant time.

A key is shown once, when it is created; only its hash and a short prefix (to tell keys
apart in listings) are kept. Permissions use Braze's names (``users.track``), so a partner
pointed at the gateway gets the same 401/403 answers Braze would give.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

import orjson
from sqlalchemy import Column, Engine, Float, Integer, String, Table, Text, insert, select, update

from headwater.errors import ConfigError
from headwater.keycache import REFRESH_SECONDS, KeyCache, hash_key
from headwater.state.db import metadata

# Headwater's own permissions, beside Braze's endpoint ones: the stream inspector and
# counters, pausing streams, the schedules API.
HUB_PERMISSIONS = ("streams.read", "streams.write", "schedules.read", "schedules.write")

KEY_PREFIX = "hwk_"

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
    engine: Engine,
    name: str,
    permissions: list[str],
    destination: str | None = None,
    known_destinations: Collection[str] | None = None,
) -> tuple[GatewayKey, str]:
    """Issue a key; returns its record and the plain key, which is never stored. With
    ``known_destinations``, a key for any other destination is refused (its traffic
    would have nowhere to go)."""
    if not name:
        raise ConfigError("a key needs a name")
    if not permissions:
        raise ConfigError("a key needs at least one permission (e.g. --perm users.track)")
    known = known_destinations
    if destination is not None and known is not None and destination not in known:
        raise ConfigError(unknown_destination(destination, known))
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


def unknown_destination(destination: str, known: Collection[str]) -> str:
    names = ", ".join(sorted(known)) or "(none)"
    return f"no destination named {destination!r} in headwater.yml; destinations: {names}"


def keys_without_destination(engine: Engine, known: Collection[str]) -> list[str]:
    """A line per active key whose destination is not in ``known``, for ``serve`` to
    refuse at start-up (its partner's posts would be accepted and never delivered)."""
    return [
        f"key {k.name!r} (id {k.id}) sends to destination {k.destination!r}, "
        "which is not in headwater.yml"
        for k in list_keys(engine, include_revoked=False)
        if k.destination is not None and k.destination not in known
    ]


def list_keys(engine: Engine, include_revoked: bool = True) -> list[GatewayKey]:
    query = select(gateway_keys).order_by(gateway_keys.c.id)
    if not include_revoked:
        query = query.where(gateway_keys.c.revoked_at.is_(None))
    with engine.connect() as conn:
        return [_record(row) for row in conn.execute(query)]


def revoke_key(
    engine: Engine, name: str | None = None, key_id: int | None = None
) -> list[GatewayKey]:
    """Revoke every active key named ``name``, or the one with id ``key_id``; returns what
    was revoked. A name is only ever a name, even when it looks like a number."""
    if (name is None) == (key_id is None):
        raise ValueError("revoke by name or by id: exactly one of them")
    where = gateway_keys.c.name == name if key_id is None else gateway_keys.c.id == key_id
    with engine.begin() as conn:
        rows = conn.execute(
            select(gateway_keys).where(where, gateway_keys.c.revoked_at.is_(None))
        ).all()
        if rows:
            conn.execute(
                update(gateway_keys)
                .where(gateway_keys.c.id.in_([r.id for r in rows]))
                .values(revoked_at=time.time())
            )
    return [_record(row) for row in rows]


class KeyRing:
    """The active keys of a running server, held in a ``KeyCache``: a request never waits
    on the database, a flood of unknown keys causes no reads, and a revocation lands
    within ``cache_seconds``. Keys are found by their SHA-256, so how long a lookup takes
    says nothing about the key itself."""

    def __init__(
        self,
        engine: Engine,
        cache_seconds: float = REFRESH_SECONDS,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._cache: KeyCache[GatewayKey] = KeyCache(
            self._load, refresh_seconds=cache_seconds, clock=clock
        )

    def _load(self) -> dict[str, GatewayKey]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(gateway_keys).where(gateway_keys.c.revoked_at.is_(None))
            ).all()
        return {row.key_hash: _record(row) for row in rows}

    def lookup(self, presented: str | None) -> GatewayKey | None:
        """The active key matching ``presented``, or None."""
        if not presented:
            return None
        return self._cache.get(hash_key(presented))

    def invalidate(self) -> None:
        """Read the keys again at the next lookup (this process just changed them)."""
        self._cache.invalidate()
