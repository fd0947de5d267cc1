"""Attribute de-duplication: drop attribute values equal to the last value delivered to the
same user at the same destination, before they cost a data point.

Braze bills every attribute *set*, changed or not, and partners re-send whole profiles on
every event. Only values Braze accepted are remembered (``record`` runs after a 2xx), so a
failed delivery never suppresses its retry. Operators (``inc``, ``add``/``remove``,
``$add``...) change the stored value relative to itself and are always sent.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

import orjson
from sqlalchemy import Column, Engine, LargeBinary, String, Table, select
from sqlalchemy.dialects import postgresql, sqlite

from headwater.braze.identifiers import ObjectError, identifier_of
from headwater.braze.profile import FREE_FIELDS
from headwater.braze.track import ARRAY_OPERATORS, CONTROL_KEYS, OBJECT_ARRAY_OPERATORS
from headwater.chunks import chunks
from headwater.state.db import metadata

CACHE_USERS = 200_000
_OPERATORS = ARRAY_OPERATORS | OBJECT_ARRAY_OPERATORS | {"inc"}

delivered_attributes = Table(
    "delivered_attributes",
    metadata,
    Column("destination", String(200), primary_key=True),
    Column("user_key", String(1100), primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("value", LargeBinary, nullable=False),
)


def user_key(obj: dict) -> str | None:
    """One string per Braze user identifier, e.g. ``external_id:u-1``."""
    try:
        ident = identifier_of(obj)
    except ObjectError:
        return None
    value = ident.value if isinstance(ident.value, str) else "\x00".join(ident.value)
    return f"{ident.kind}:{value}"


def _canonical(value: object) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _is_operator(value: object) -> bool:
    return isinstance(value, dict) and bool(value) and set(value) <= _OPERATORS


def data_points(name: str, value: object) -> int:
    """Roughly what setting ``value`` costs: nothing for subscription fields, one per key
    of a nested object, one otherwise (Braze's data-point rules)."""
    if name in FREE_FIELDS:
        return 0
    if isinstance(value, dict):
        return max(1, sum(data_points(k, v) for k, v in value.items()))
    return 1


class AttributeDeduper:
    def __init__(self, engine: Engine, destination: str) -> None:
        self.engine = engine
        self.destination = destination
        self._cache: OrderedDict[str, dict[str, bytes]] = OrderedDict()

    def _identity_keys(self, obj: dict) -> set[str]:
        keys = set(CONTROL_KEYS)
        try:
            ident = identifier_of(obj)
        except ObjectError:
            return keys
        if not ident.is_primary:
            keys.add(ident.kind)  # email/phone identify the user here; keep them
        return keys

    def load(self, users: Iterable[str]) -> None:
        """Read these users' delivered values (one query per 500 users). Always re-read:
        another serve process may have delivered newer values since."""
        missing = sorted(set(users))
        for chunk in chunks(missing, 500):
            for user in chunk:
                self._cache[user] = {}
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(
                        delivered_attributes.c.user_key,
                        delivered_attributes.c.name,
                        delivered_attributes.c.value,
                    ).where(
                        delivered_attributes.c.destination == self.destination,
                        delivered_attributes.c.user_key.in_(chunk),
                    )
                ).all()
            for user, name, value in rows:
                self._cache[user][name] = value
        while len(self._cache) > CACHE_USERS:
            self._cache.popitem(last=False)

    def filter(self, obj: dict) -> tuple[dict | None, int]:
        """``obj`` without unchanged attributes (None when nothing is left to send), and
        the data points that saves. Call ``load`` for the object's user first."""
        user = user_key(obj)
        if user is None:
            return obj, 0
        known = self._cache.get(user)
        if not known:
            return obj, 0
        keep = self._identity_keys(obj)
        out: dict = {}
        saved = 0
        changed = False
        for name, value in obj.items():
            if name in keep or _is_operator(value):
                out[name] = value
                if name not in keep:
                    changed = True
                continue
            previous = known.get(name)
            if previous is not None and previous == _canonical(value):
                saved += data_points(name, value)
                continue
            out[name] = value
            changed = True
        if not changed:
            return None, saved
        return (out if saved else obj), saved

    def record(self, conn, objects: Iterable[dict]) -> None:
        """Remember values Braze accepted, inside the caller's transaction."""
        rows: dict[tuple[str, str], bytes] = {}
        for obj in objects:
            user = user_key(obj)
            if user is None:
                continue
            keep = self._identity_keys(obj)
            for name, value in obj.items():
                if name in keep or _is_operator(value) or name == "_merge_objects":
                    continue
                rows[(user, name)] = _canonical(value)
        if not rows:
            return
        insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        stmt = insert(delivered_attributes)
        stmt = stmt.on_conflict_do_update(
            index_elements=["destination", "user_key", "name"],
            set_={"value": stmt.excluded.value},
        )
        conn.execute(
            stmt,
            [
                {"destination": self.destination, "user_key": u, "name": n, "value": v}
                for (u, n), v in rows.items()
            ],
        )
        for (user, name), value in rows.items():
            cached = self._cache.get(user)
            if cached is not None:
                cached[name] = value


__all__ = ["AttributeDeduper", "data_points", "delivered_attributes", "user_key"]
