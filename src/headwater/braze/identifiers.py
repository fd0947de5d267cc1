"""Which user an object is about: one primary identifier (external_id, user_alias,
braze_id), or else a secondary one (email wins over phone)."""

from __future__ import annotations

from dataclasses import dataclass

from headwater.braze.limits import MAX_EXTERNAL_ID_BYTES

PRIMARY_KEYS = ("external_id", "user_alias", "braze_id")
SECONDARY_KEYS = ("email", "phone")

MSG_IDENTIFIER_REQUIRED = (
    "'external_id' or 'braze_id' or 'user_alias' or 'email' or 'phone' is required"
)
MSG_ONE_PRIMARY = "Only one of 'external_id', 'braze_id' or 'user_alias' may be given per object"
MSG_EXTERNAL_ID_TYPE = "'external_id' must be a non-empty string"
MSG_EXTERNAL_ID_TOO_LARGE = (
    f"EXTERNAL_USER_ID_TOO_LARGE: 'external_id' is longer than {MAX_EXTERNAL_ID_BYTES} bytes"
)
MSG_BRAZE_ID_TYPE = "'braze_id' must be a non-empty string"
MSG_ALIAS_SHAPE = "'user_alias' must be an object with string 'alias_name' and 'alias_label'"


class ObjectError(Exception):
    """One object of a request is invalid; ``type`` is the Braze-style error text."""

    def __init__(self, type_: str) -> None:
        super().__init__(type_)
        self.type = type_


@dataclass(frozen=True, slots=True)
class Identifier:
    kind: str  # external_id | user_alias | braze_id | email | phone
    value: str | tuple[str, str]  # user_alias -> (alias_name, alias_label)

    @property
    def is_primary(self) -> bool:
        return self.kind in PRIMARY_KEYS


def check_external_id(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ObjectError(MSG_EXTERNAL_ID_TYPE)
    if len(value) * 4 > MAX_EXTERNAL_ID_BYTES and len(value.encode()) > MAX_EXTERNAL_ID_BYTES:
        raise ObjectError(MSG_EXTERNAL_ID_TOO_LARGE)
    return value


def check_alias(value: object) -> tuple[str, str]:
    if not isinstance(value, dict):
        raise ObjectError(MSG_ALIAS_SHAPE)
    name, label = value.get("alias_name"), value.get("alias_label")
    if not isinstance(name, str) or not isinstance(label, str) or not name or not label:
        raise ObjectError(MSG_ALIAS_SHAPE)
    return name, label


def check_identifier(obj: dict) -> None:
    """Raise ObjectError unless ``obj`` names its user validly; the common case (a plain
    external_id) is checked without building an ``Identifier``."""
    external_id = obj.get("external_id")
    if (
        type(external_id) is str
        and 0 < len(external_id) * 4 <= MAX_EXTERNAL_ID_BYTES
        and obj.get("user_alias") is None
        and obj.get("braze_id") is None
    ):
        return
    identifier_of(obj)


def identifier_of(obj: dict) -> Identifier:
    """The identifier Braze resolves ``obj`` by; raises ObjectError when there is none
    or more than one primary identifier."""
    present = [key for key in PRIMARY_KEYS if obj.get(key) is not None]
    if len(present) > 1:
        raise ObjectError(MSG_ONE_PRIMARY)
    if present:
        kind = present[0]
        if kind == "external_id":
            return Identifier(kind, check_external_id(obj[kind]))
        if kind == "user_alias":
            return Identifier(kind, check_alias(obj[kind]))
        braze_id = obj[kind]
        if not isinstance(braze_id, str) or not braze_id:
            raise ObjectError(MSG_BRAZE_ID_TYPE)
        return Identifier(kind, braze_id)
    for kind in SECONDARY_KEYS:
        value = obj.get(kind)
        if isinstance(value, str) and value:
            return Identifier(kind, value)
    raise ObjectError(MSG_IDENTIFIER_REQUIRED)
