"""``/users/alias/update`` and ``/users/external_ids/rename``: changing a name a user is
known by. Kept beside ``models.py`` (whose indexes they update) as functions over the
backend, so the backend stays one method per original endpoint.

A renamed external id is kept as a *deprecated* id: the user answers to both until it is
removed (Braze's migration period), so the old id resolves too.
"""

from __future__ import annotations

from datetime import UTC, datetime

from headwater.braze.identifiers import ObjectError, check_external_id
from headwater.braze.timeparse import format_braze_time
from headwater.sandbox.users import errors as msg
from headwater.sandbox.users.models import UsersBackend, _cap, _list_of

ALIAS_UPDATE_FIELDS = ("alias_label", "old_alias_name", "new_alias_name")
RENAME_SAME = "'current_external_id' and 'new_external_id' must differ"
RENAME_NOT_PRIMARY = "'current_external_id' is not the primary external id of any user"
RENAME_IN_USE = "'new_external_id' is already used by a user (primary or deprecated)"
RENAME_SHAPE = "'current_external_id' and 'new_external_id' are required strings"


def users_alias_update(users: UsersBackend, body: dict) -> dict:
    """Rename aliases within their label; an update matching no user changes nothing."""
    updates = _list_of(body, "alias_updates", dict, required=True)
    _cap(updates)
    now = format_braze_time(datetime.now(UTC))
    touched: dict[str, dict] = {}
    errors = []
    for index, update in enumerate(updates):
        values = [update.get(f) for f in ALIAS_UPDATE_FIELDS]
        if not all(isinstance(v, str) and v for v in values):
            errors.append({"type": f"{', '.join(ALIAS_UPDATE_FIELDS)} are required strings",
                           "index": index})  # fmt: skip
            continue
        label, old, new = values
        braze_id = users.by_alias.get((old, label))
        if braze_id is None or braze_id not in users.profiles:
            continue  # no match: no change, as Braze does
        if (new, label) in users.by_alias:
            errors.append({"type": msg.ALIAS_EXISTS, "index": index})
            continue
        profile = users.profiles[braze_id]
        for alias in profile.get("user_aliases", []):
            if alias["alias_label"] == label and alias["alias_name"] == old:
                alias["alias_name"] = new
        del users.by_alias[(old, label)]
        users.by_alias[(new, label)] = braze_id
        profile["updated_at"] = now
        touched[braze_id] = profile
    users.store.write(list(touched.values()), counters=[("requests", "users.alias.update", 1)])
    answer: dict = {"message": "success"}
    if errors:
        answer["errors"] = errors
    return answer


def users_external_ids_rename(users: UsersBackend, body: dict) -> dict:
    """Give users a new primary external id; the old one stays as a deprecated id."""
    renames = _list_of(body, "external_id_renames", dict, required=True)
    _cap(renames)
    now = format_braze_time(datetime.now(UTC))
    touched: dict[str, dict] = {}
    renamed: list[str] = []
    failed: list[list] = []
    for rename in renames:
        current, new = rename.get("current_external_id"), rename.get("new_external_id")
        try:
            check_external_id(current)
            check_external_id(new)
        except ObjectError:
            failed.append([_shown(current), RENAME_SHAPE])
            continue
        if current == new:
            failed.append([current, RENAME_SAME])
            continue
        braze_id = users.by_external_id.get(current)
        profile = users.profiles.get(braze_id) if braze_id else None
        if profile is None or profile.get("external_id") != current:
            failed.append([current, RENAME_NOT_PRIMARY])
            continue
        if new in users.by_external_id:
            failed.append([current, RENAME_IN_USE])
            continue
        profile["external_id"] = new
        profile.setdefault("deprecated_external_ids", []).append(current)
        profile["updated_at"] = now
        users.by_external_id[new] = braze_id  # the old id keeps resolving (deprecated)
        touched[braze_id] = profile
        renamed.append(current)
    users.store.write(
        list(touched.values()), counters=[("requests", "users.external_ids.rename", 1)]
    )
    return {"message": "success", "external_ids": renamed, "rename_errors": failed}


def _shown(value: object) -> object:
    return value if isinstance(value, str) and len(value) <= 255 else "<invalid>"
