"""Attribute de-duplication: drop attribute values equal to the last value delivered to the
same user at the same destination, before they cost a data point.

The one promise: Braze ends with the last value posted. Values are compared in outbox
order, with what was delivered and with the earlier objects of the same round, and an
operator forgets what it touched (its result is Braze's to know).

Braze bills every attribute *set*, changed or not, and partners re-send whole profiles on
every event. Only values Braze accepted are remembered (``record`` runs after a 2xx), so a
failed delivery never suppresses its retry. Operators (``inc``, ``add``/``remove``,
``$add``...) change the stored value relative to itself and are always sent.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence

import orjson
from sqlalchemy import Engine, bindparam, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from headwater.braze.datapoints import attribute_data_points
from headwater.braze.identifiers import ObjectError, identifier_of
from headwater.braze.track import ARRAY_OPERATORS, CONTROL_KEYS, OBJECT_ARRAY_OPERATORS
from headwater.chunks import chunks
from headwater.state.delivered import delivered_attributes

CACHE_USERS = 200_000
_OPERATORS = ARRAY_OPERATORS | OBJECT_ARRAY_OPERATORS | {"inc"}


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


class AttributeDeduper:
    def __init__(self, engine: Engine, destination: str) -> None:
        self.engine = engine
        self.destination = destination
        self._cache: OrderedDict[str, dict[str, bytes]] = OrderedDict()
        # The outbox row each delivered value came from (this process's memory): a value
        # from an older row, retried after a newer one was delivered, must not overwrite it.
        self._origins: OrderedDict[str, dict[str, int]] = OrderedDict()

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

    def filter_batch(
        self, objects: Sequence[dict], origins: Sequence[int] | None = None
    ) -> tuple[list[tuple[dict | None, int]], set[tuple[str, str]]]:
        """Each object of one delivery round, in outbox order, without the attribute values
        that would change nothing, with the data points that saves (None when nothing is
        left to send); call ``load`` for the objects' users first.

        A value is dropped when it equals the user's value at that point of the round (as
        delivered before, or as an operator left it unknown), or when a later object of
        the round sets the same attribute again: only the last value of a round is sent,
        so the requests of a round (sent concurrently) cannot land out of order and leave
        an older value; and so is a value from an older outbox row (``origins``: each
        object's row id) than the one already delivered (a retry after a later value went
        out). Also returns the (user, attribute) pairs whose value after the
        round is not known here (operators, merged objects), for ``record``."""
        users = [user_key(obj) for obj in objects]
        replaced: set[tuple[int, str]] = set()
        volatile: set[tuple[str, str]] = set()
        set_later: set[tuple[str, str]] = set()
        for position in range(len(objects) - 1, -1, -1):
            user = users[position]
            if user is None:
                continue
            obj = objects[position]
            for name, _value, plain in self._attributes(obj):
                if not plain:
                    volatile.add((user, name))
                elif (user, name) in set_later:
                    replaced.add((position, name))
                else:
                    set_later.add((user, name))
        running: dict[str, dict[str, bytes]] = {}
        out: list[tuple[dict | None, int]] = []
        for position, obj in enumerate(objects):
            user = users[position]
            if user is None:
                out.append((obj, 0))
                continue
            known = running.get(user)
            if known is None:
                known = running[user] = dict(self._cache.get(user) or {})
            dropped: set[str] = set()
            saved = 0
            changed = False
            newer = self._origins.get(user, {})
            origin = origins[position] if origins is not None else None
            for name, value, plain in self._attributes(obj):
                if not plain:  # relative to the stored value: always sent, value unknown after
                    known.pop(name, None)
                    changed = True
                    continue
                canonical = _canonical(value)
                superseded = origin is not None and newer.get(name, origin) > origin
                if superseded or (position, name) in replaced or known.get(name) == canonical:
                    dropped.add(name)
                    saved += attribute_data_points(name, value)
                    continue
                known[name] = canonical
                changed = True
            if not changed:
                out.append((None, saved))
            elif dropped:
                out.append(({k: v for k, v in obj.items() if k not in dropped}, saved))
            else:
                out.append((obj, saved))
        return out, volatile

    def _remember_origin(self, user: str, name: str, origin: int) -> None:
        seen = self._origins.get(user)
        if seen is None:
            seen = self._origins[user] = {}
            while len(self._origins) > CACHE_USERS:
                self._origins.popitem(last=False)
        if origin >= seen.get(name, origin):
            seen[name] = origin

    def _attributes(self, obj: dict) -> Iterator[tuple[str, object, bool]]:
        """``(name, value, plain)`` for each attribute ``obj`` changes; ``plain``: the value
        replaces what was stored (not an operator, not an object merged into the old one)."""
        keep = self._identity_keys(obj)
        merge = obj.get("_merge_objects") is True
        for name, value in obj.items():
            if name in keep:
                continue
            yield name, value, not (_is_operator(value) or (merge and isinstance(value, dict)))

    def record(
        self,
        conn,
        sent: Iterable[tuple[dict, int]],
        volatile: set[tuple[str, str]],
        in_doubt: Iterable[dict] = (),
    ) -> None:
        """Remember values Braze accepted, inside the caller's transaction. An attribute an
        operator or a merge changed (``volatile``: anywhere in the round) is forgotten, so
        the next value set for it is sent whatever it is; so is every attribute of an
        object whose delivery failed (``in_doubt``): Braze may have applied it before the
        failure (a lost answer, a 5xx), and a later value equal to the one remembered
        would then be dropped while Braze holds the failed one."""
        rows: dict[tuple[str, str], bytes | None] = {}
        for obj, origin in sent:
            user = user_key(obj)
            if user is None:
                continue
            for name, value, plain in self._attributes(obj):
                forget = not plain or (user, name) in volatile
                rows[(user, name)] = None if forget else _canonical(value)
                if plain:
                    self._remember_origin(user, name, origin)
        for obj in in_doubt:
            user = user_key(obj)
            if user is not None:
                rows.update(((user, name), None) for name, _value, _plain in self._attributes(obj))
        if not rows:
            return
        kept = {pair: value for pair, value in rows.items() if value is not None}
        forgotten = [pair for pair, value in rows.items() if value is None]
        if kept:
            insert = (
                postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
            )
            stmt = insert(delivered_attributes)
            stmt = stmt.on_conflict_do_update(
                index_elements=["destination", "user_key", "name"],
                set_={"value": stmt.excluded.value},
            )
            conn.execute(
                stmt,
                [
                    {"destination": self.destination, "user_key": u, "name": n, "value": v}
                    for (u, n), v in kept.items()
                ],
            )
        if forgotten:
            conn.execute(
                delete(delivered_attributes).where(
                    delivered_attributes.c.destination == self.destination,
                    delivered_attributes.c.user_key == bindparam("u"),
                    delivered_attributes.c.name == bindparam("n"),
                ),
                [{"u": u, "n": n} for u, n in forgotten],
            )
        for (user, name), value in rows.items():
            cached = self._cache.get(user)
            if cached is None:
                continue
            if value is None:
                cached.pop(name, None)
            else:
                cached[name] = value


__all__ = ["AttributeDeduper", "delivered_attributes", "user_key"]
