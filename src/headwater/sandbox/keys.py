"""API keys with permissions, as Braze has them: an unknown key is 401, a key without the
endpoint's permission is 403.

Keys created with ``headwater sandbox keys create`` are stored as SHA-256 hashes (the key
itself is printed once). Keys given on the command line (``--key``) or in a keys file are
held in memory only, so stopping the sandbox and starting it without them closes them.
A running sandbox holds the stored keys in a ``KeyCache`` (the gateway's mechanism), read
again at most once a second, so keys created or revoked from another process take effect
within a second without a restart, and a flood of unknown keys causes no reads.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import yaml

from headwater.braze.endpoints import PERMISSIONS
from headwater.keycache import KeyCache, hash_key
from headwater.sandbox.store import Store

ALL_PERMISSIONS = "*"


@dataclass(frozen=True)
class ApiKey:
    name: str
    permissions: frozenset[str]
    created_at: str
    revoked_at: str | None = None
    stored: bool = True  # False for --key / keys-file keys (memory only)

    def allows(self, permission: str) -> bool:
        return ALL_PERMISSIONS in self.permissions or permission in self.permissions

    def __repr__(self) -> str:  # no secret is held, but keep reprs short and safe
        return f"ApiKey(name={self.name!r}, permissions={sorted(self.permissions)})"


def new_key_secret() -> str:
    return secrets.token_hex(18)


def check_permissions(permissions: list[str]) -> list[str]:
    unknown = [p for p in permissions if p != ALL_PERMISSIONS and p not in PERMISSIONS]
    if unknown:
        raise ValueError(f"unknown permission(s): {', '.join(unknown)}")
    if not permissions:
        raise ValueError("a key needs at least one permission (use '*' for all)")
    return permissions


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class KeyRing:
    """The keys a sandbox accepts, looked up by hash."""

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self._static: dict[str, ApiKey] = {}
        self._stored: KeyCache[ApiKey] = KeyCache(self._load, clock=clock)

    def _load(self) -> dict[str, ApiKey]:
        return {
            key_hash: ApiKey(name, frozenset(json.loads(perms)), created, revoked)
            for name, key_hash, perms, created, revoked in self.store.api_keys()
            if revoked is None
        }

    def reload(self) -> None:
        """Read the stored keys again at the next lookup."""
        self._stored.invalidate()

    def add_static(self, name: str, secret: str, permissions: list[str]) -> None:
        """A key held in memory only (``--key``, ``HEADWATER_SANDBOX_KEY``, keys files)."""
        perms = frozenset(check_permissions(list(permissions)))
        self._static[hash_key(secret)] = ApiKey(name, perms, _now(), stored=False)

    def create(self, name: str, permissions: list[str], secret: str | None = None) -> str:
        """Store a new key (replacing one of the same name); return its secret, once."""
        if not name:
            raise ValueError("a key needs a name")
        secret = secret or new_key_secret()
        perms = json.dumps(sorted(set(check_permissions(list(permissions)))))
        self.store.put_key(name, hash_key(secret), perms, _now())
        self.reload()
        return secret

    def revoke(self, name: str) -> bool:
        done = self.store.revoke_key(name, _now())
        self.reload()
        return done

    def listing(self) -> list[ApiKey]:
        stored = [
            ApiKey(name, frozenset(json.loads(perms)), created, revoked)
            for name, _hash, perms, created, revoked in self.store.api_keys()
        ]
        return stored + list(self._static.values())

    def lookup(self, secret: str) -> ApiKey | None:
        digest = hash_key(secret)
        return self._static.get(digest) or self._stored.get(digest)

    def load_file(self, path: str) -> int:
        """Keys from a YAML file: a list of ``{name, key, permissions}`` (memory only)."""
        with open(path, encoding="utf-8") as handle:
            entries = yaml.safe_load(handle) or []
        if isinstance(entries, dict) and "keys" in entries:
            entries = entries["keys"]
        if not isinstance(entries, list):
            raise ValueError(f"{path}: expected a list of keys")
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or not {"name", "key"} <= set(entry):
                raise ValueError(f"{path}: entry {i} needs 'name' and 'key'")
            permissions = entry.get("permissions", [ALL_PERMISSIONS])
            if isinstance(permissions, str):
                permissions = [permissions]
            try:
                self.add_static(str(entry["name"]), str(entry["key"]), list(permissions))
            except ValueError as exc:
                raise ValueError(f"{path}: entry {i}: {exc}") from None
        return len(entries)
