"""Identity: an object that only carries an email is resolved to a Braze user before it
is sent, so events land on the profile the customer already has.

Lookup is ``/users/export/ids`` by ``email_address``: a user with an ``external_id`` wins
(Braze's own rule for several matches), else the first user's ``braze_id``. When Braze has
no user with that email, a user alias is created (alias name = the email, label from the
stream's ``alias_label``), the email is written to the alias profile (so the next lookup,
after a restart too, finds it instead of creating another), and the object is attached to
it. Emails are compared as Braze compares them, ignoring case and surrounding spaces, so
``Ada@Example.com`` and ``ada@example.com`` are one person with one alias. Answers are
cached, and concurrent lookups of one email share one request, so a burst creates one
alias, not ten.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from headwater.braze.identifiers import PRIMARY_KEYS

DEFAULT_CACHE_SIZE = 100_000
LOOKUP_FIELDS = ["external_id", "braze_id", "user_aliases"]


def normal_email(email: str) -> str:
    """The form an email is looked up, cached and named by (Braze ignores its case)."""
    return email.strip().lower()


def needs_resolution(obj: dict) -> str | None:
    """The email to resolve, when the object has no primary identifier but an email."""
    if any(obj.get(k) is not None for k in PRIMARY_KEYS):
        return None
    email = obj.get("email")
    return email if isinstance(email, str) and email else None


def attach(obj: dict, kind: str, identity: dict) -> dict:
    """``obj`` identified by ``identity``; events and purchases drop the email field
    (it was only there to find the user), attributes keep it as the profile's email."""
    out = {**identity, **{k: v for k, v in obj.items() if k not in PRIMARY_KEYS}}
    if kind != "attributes":
        out.pop("email", None)
    if "user_alias" in identity and kind == "attributes":
        out.setdefault("_update_existing_only", False)
    return out


class IdentityResolver:
    def __init__(self, client, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        self._client = client
        self._cache_size = cache_size
        self._cache: OrderedDict[tuple[str, str], dict] = OrderedDict()
        self._pending: dict[tuple[str, str], asyncio.Future] = {}
        self.lookups = 0
        self.aliases_created = 0

    async def resolve(self, email: str, alias_label: str) -> dict:
        """Identifier fields for ``email`` (``external_id``, ``braze_id`` or
        ``user_alias``). Raises the client's errors when Braze cannot be asked."""
        email = normal_email(email)
        key = (email, alias_label)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            identity = await self._lookup(email, alias_label)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # consumed here; waiters re-raise their own copy
            raise
        finally:
            self._pending.pop(key, None)
        future.set_result(identity)
        self._cache[key] = identity
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return identity

    async def _lookup(self, email: str, alias_label: str) -> dict:
        self.lookups += 1
        answer = await self._client.request(
            "users.export.ids", {"email_address": email, "fields_to_export": LOOKUP_FIELDS}
        )
        users = [u for u in answer.get("users") or [] if isinstance(u, dict)]
        for user in users:
            if user.get("external_id"):
                return {"external_id": user["external_id"]}
        for user in users:
            for alias in user.get("user_aliases") or []:
                if alias.get("alias_label") == alias_label and alias.get("alias_name"):
                    return {"user_alias": {"alias_name": alias["alias_name"],
                                           "alias_label": alias_label}}  # fmt: skip
        for user in users:
            if user.get("braze_id"):
                return {"braze_id": user["braze_id"]}
        alias = {"alias_name": email, "alias_label": alias_label}
        await self._client.request("users.alias.new", {"user_aliases": [alias]})
        self.aliases_created += 1
        profile = {"user_alias": alias, "email": email, "_update_existing_only": False}
        await self._client.request("users.track", {"attributes": [profile]})
        return {"user_alias": alias}
