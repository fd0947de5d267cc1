"""Validation of ``/users/track`` bodies: request-level fatal errors (400) and per-object
errors (``{"type", "input_array", "index"}``) so one bad object never sinks the others.

Used by the sandbox (to answer as Braze would), the gateway (to refuse what Braze would
refuse before it is queued) and the client (to report bad rows before sending them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from headwater.braze.errors import MSG_MAX_INPUT, MSG_NO_VALID_DATA, BrazeError
from headwater.braze.identifiers import ObjectError, check_identifier
from headwater.braze.limits import (
    DEFAULT_MAX_ARRAY_ITEMS,
    MAX_EVENT_PROPERTIES_BYTES,
    MAX_NESTED_ATTRIBUTE_BYTES,
    MAX_PURCHASE_QUANTITY,
    MAX_STRING_LENGTH,
    TRACK_ARRAYS,
    BatchPolicy,
    objects_over_limit,
)
from headwater.braze.timeparse import (
    MAX_TIME_YEAR,
    is_braze_time,
    looks_like_time,
    parse_braze_time,
)
from headwater.braze.values import (
    CURRENCIES,
    GENDERS,
    GROUP_STATES,
    SUBSCRIBE_STATES,
    check_email,
    check_key,
    check_phone,
    check_short_string,
    field_error,
    is_number,
    json_size,
)

__all__ = [
    "ObjectError",
    "TrackRequest",
    "parse_track_request",
    "validate_attributes_object",
    "validate_event_object",
    "validate_purchase_object",
]

# Keys of an attributes object that steer processing rather than set a profile field.
CONTROL_KEYS = frozenset(
    {"external_id", "user_alias", "braze_id", "_update_existing_only", "_merge_objects",
     "push_token_import", "app_id"}
)  # fmt: skip
ARRAY_OPERATORS = frozenset({"add", "remove"})
OBJECT_ARRAY_OPERATORS = frozenset({"$add", "$remove", "$update"})
RESERVED_EVENT_PROPERTIES = frozenset({"time", "event_name"})


def _string(field_name: str) -> Callable[[object], None]:
    return lambda v: check_short_string(v, field_name)


def _one_of(field_name: str, allowed: frozenset[str], code: str) -> Callable[[object], None]:
    def check(value: object) -> None:
        if value is not None and value not in allowed:
            raise ObjectError(f"{code}: '{field_name}' must be one of {', '.join(sorted(allowed))}")

    return check


def _gender(value: object) -> None:
    if value is not None and (not isinstance(value, str) or value.lower() not in GENDERS):
        raise field_error("gender", "must be one of M, F, O, N, P or null")


def _dob(value: object) -> None:
    if value is None:
        return
    parsed = parse_braze_time(value) if isinstance(value, str) and len(value) == 10 else None
    if parsed is None or value[4] != "-":
        raise field_error("dob", "must be a date in YYYY-MM-DD format")


def _date(field_name: str) -> Callable[[object], None]:
    def check(value: object) -> None:
        if value is not None and not is_braze_time(value):
            raise field_error(field_name, "must be a date")

    return check


def _boolean(field_name: str) -> Callable[[object], None]:
    def check(value: object) -> None:
        if value is not None and not isinstance(value, bool):
            raise field_error(field_name, "must be true or false")

    return check


def _location(value: object) -> None:
    if value is None:
        return
    if (
        not isinstance(value, dict)
        or not is_number(value.get("longitude"))
        or not is_number(value.get("latitude"))
    ):
        raise ObjectError(
            "BAD_LOCATION_UPDATE: 'current_location' needs numeric longitude and latitude"
        )


def _subscription_groups(value: object) -> None:
    if not isinstance(value, list):
        raise ObjectError("BAD_SUBSCRIPTION_GROUP_ARRAY: 'subscription_groups' must be an array")
    for group in value:
        if not isinstance(group, dict):
            raise ObjectError(
                "BAD_SUBSCRIPTION_GROUP_HASH: each subscription group must be an object"
            )
        group_id = group.get("subscription_group_id")
        if not isinstance(group_id, str) or not group_id:
            raise ObjectError("BAD_SUBSCRIPTION_GROUP_ID: 'subscription_group_id' must be a string")
        if group.get("subscription_state") not in GROUP_STATES:
            raise ObjectError(
                "BAD_SUBSCRIPTION_GROUP_STATE: 'subscription_state' must be subscribed or unsubscribed"
            )


def _push_tokens(value: object) -> None:
    if not isinstance(value, list):
        raise ObjectError("BAD_PUSH_TOKEN_IMPORT: 'push_tokens' must be an array")
    for token in value:
        if not isinstance(token, dict) or not isinstance(token.get("app_id"), str):
            raise ObjectError("BAD_PUSH_TOKEN_APP_ID: each push token needs a string 'app_id'")
        if not isinstance(token.get("token"), str) or not token["token"]:
            raise ObjectError("BAD_PUSH_TOKEN_STRING: each push token needs a string 'token'")
        device_id = token.get("device_id")
        if device_id is not None and (
            not isinstance(device_id, str) or not 8 <= len(device_id.encode()) <= 255
        ):
            raise ObjectError("BAD_DEVICE_ID: 'device_id' must be 8 to 255 bytes")


def _passthrough(_value: object) -> None:
    return None


STANDARD_FIELDS: dict[str, Callable[[object], None]] = {
    "first_name": _string("first_name"),
    "last_name": _string("last_name"),
    "home_city": _string("home_city"),
    "email": check_email,
    "phone": check_phone,
    "country": _string("country"),
    "language": _string("language"),
    "dob": _dob,
    "gender": _gender,
    "time_zone": lambda v: None,  # invalid zones are ignored by Braze, not errors
    "email_subscribe": _one_of("email_subscribe", SUBSCRIBE_STATES, "BAD_EMAIL_SUBSCRIPTION_STATE"),
    "push_subscribe": _one_of("push_subscribe", SUBSCRIBE_STATES, "BAD_PUSH_SUBSCRIPTION_STATE"),
    "subscription_groups": _subscription_groups,
    "email_open_tracking_disabled": _boolean("email_open_tracking_disabled"),
    "email_click_tracking_disabled": _boolean("email_click_tracking_disabled"),
    "current_location": _location,
    "date_of_first_session": _date("date_of_first_session"),
    "date_of_last_session": _date("date_of_last_session"),
    "marked_email_as_spam_at": _date("marked_email_as_spam_at"),
    "push_tokens": _push_tokens,
    "image_url": _string("image_url"),
    "facebook": _passthrough,
    "twitter": _passthrough,
    "bio": _passthrough,
}


FLAGS = ("_update_existing_only", "_merge_objects", "push_token_import")


def _check_identifier_and_flags(obj: object) -> dict:
    if not isinstance(obj, dict):
        raise ObjectError("Each object must be a JSON object")
    check_identifier(obj)
    for flag in FLAGS:
        if flag in obj and not isinstance(obj[flag], bool):
            raise ObjectError(f"'{flag}' must be true or false")
    return obj


def _nested_ok(value: object, depth: int = 0) -> bool:
    """Braze's nested-attribute rules: keys without spaces, '.' or '$' (bar $time);
    no nulls inside; dates as {"$time": ...}; strings within 255 characters."""
    if depth > 50:
        return False
    if isinstance(value, dict):
        if set(value) == {"$time"}:
            return is_braze_time(value["$time"])
        for key, inner in value.items():
            if not key or " " in key or "." in key or key.startswith("$"):
                return False
            if len(key) > MAX_STRING_LENGTH or not _nested_ok(inner, depth + 1):
                return False
        return True
    if isinstance(value, list):
        return all(_nested_ok(item, depth + 1) for item in value)
    if isinstance(value, str):
        return len(value) <= MAX_STRING_LENGTH
    return value is not None


def _check_simple_array(name: str, items: object, max_items: int) -> None:
    if not isinstance(items, list):
        raise ObjectError(f"'{name}' must be an array")
    if len(items) > max_items:
        raise ObjectError(
            f"'{name}' has {len(items)} items; the most an array holds is {max_items}"
        )
    for item in items:
        if isinstance(item, str):
            if len(item) > MAX_STRING_LENGTH:
                raise ObjectError(
                    f"'{name}' has an item longer than {MAX_STRING_LENGTH} characters"
                )
        elif not is_number(item) and not isinstance(item, bool) and not isinstance(item, dict):
            raise ObjectError(f"'{name}' items must be strings, numbers, booleans or objects")


def _custom_attribute_ok(name: str, value: object, merge: bool, max_items: int) -> bool:
    """Raise ObjectError for what Braze rejects; return False for what it silently drops
    (an invalid nested value drops that attribute's update only)."""
    kind = type(value)
    if kind is int or kind is float or kind is bool or value is None:  # the common case
        return True
    if kind is str:
        if len(value) > MAX_STRING_LENGTH:
            raise ObjectError(
                f"The value of '{name}' is longer than {MAX_STRING_LENGTH} characters"
            )
        return True
    if isinstance(value, bool) or is_number(value):
        return True
    if isinstance(value, str):
        if len(value) > MAX_STRING_LENGTH:
            raise ObjectError(
                f"The value of '{name}' is longer than {MAX_STRING_LENGTH} characters"
            )
        return True
    if isinstance(value, list):
        _check_simple_array(name, value, max_items)
        if any(isinstance(item, dict) for item in value):
            return _nested_ok(value) and json_size(value) <= MAX_NESTED_ATTRIBUTE_BYTES
        return True
    if not isinstance(value, dict):
        raise ObjectError(f"The value of '{name}' has an unsupported type")
    keys = set(value)
    if keys == {"inc"}:
        if not isinstance(value["inc"], int) or isinstance(value["inc"], bool):
            raise ObjectError(f"'{name}': 'inc' takes an integer")
        return True
    if keys and keys <= ARRAY_OPERATORS:
        for op in keys:
            _check_simple_array(f"{name}.{op}", value[op], max_items)
        return True
    if keys and keys <= OBJECT_ARRAY_OPERATORS:
        return _object_array_ops_ok(name, value, merge)
    return _nested_ok(value) and json_size(value) <= MAX_NESTED_ATTRIBUTE_BYTES


def _object_array_ops_ok(name: str, value: dict, merge: bool) -> bool:
    for op, items in value.items():
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ObjectError(f"'{name}': '{op}' takes an array of objects")
        if op == "$add" and not _nested_ok(items):
            return False
        if op in ("$remove", "$update"):
            for item in items:
                if (
                    not isinstance(item.get("$identifier_key"), str)
                    or "$identifier_value" not in item
                ):
                    raise ObjectError(
                        f"'{name}': '{op}' items need '$identifier_key' and '$identifier_value'"
                    )
        if op == "$update":
            if not merge:
                raise ObjectError(f"'{name}': '$update' requires '_merge_objects': true")
            for item in items:
                if not isinstance(item.get("$new_object"), dict) or not _nested_ok(
                    item["$new_object"]
                ):
                    return False
    return True


_PLAIN_SCALARS = frozenset({int, float, bool, type(None)})


def validate_attributes_object(
    obj: object, *, max_array_items: int = DEFAULT_MAX_ARRAY_ITEMS
) -> dict:
    """Raise ObjectError if Braze would reject ``obj``; return it without the attributes
    Braze would silently drop (the same dict when nothing is dropped)."""
    obj = _check_identifier_and_flags(obj)
    merge = obj.get("_merge_objects") is True
    dropped: list[str] = []
    for key, value in obj.items():
        if key in CONTROL_KEYS:
            continue
        standard = STANDARD_FIELDS.get(key)
        if standard is not None:
            standard(value)
            continue
        if type(key) is not str or not 0 < len(key) <= MAX_STRING_LENGTH or key[0] == "$":
            check_key(key, "attribute")  # raises with Braze's message
        kind = type(value)
        if kind in _PLAIN_SCALARS or (kind is str and len(value) <= MAX_STRING_LENGTH):
            continue  # the common case, decided without a call
        if not _custom_attribute_ok(key, value, merge, max_array_items):
            dropped.append(key)
    if dropped:
        return {k: v for k, v in obj.items() if k not in dropped}
    return obj


def _check_properties(props: object, where: str) -> None:
    if props is None:
        return
    if not isinstance(props, dict):
        raise ObjectError(f"'{where}' must be an object")
    nested = False
    # Written out rather than through check_key: this loop runs for every property of
    # every event the gateway accepts.
    for key, value in props.items():
        if (
            type(key) is not str
            or not 0 < len(key) <= MAX_STRING_LENGTH
            or key[0] == "$"
            or key in RESERVED_EVENT_PROPERTIES
        ):
            check_key(key, "property")
            raise ObjectError(f"'{key}' is a reserved property name")
        kind = type(value)
        if kind is str:
            if len(value) > MAX_STRING_LENGTH:
                raise ObjectError(f"property '{key}' is longer than {MAX_STRING_LENGTH} characters")
        elif kind is not int and kind is not float and isinstance(value, (dict, list)):
            nested = True
    if nested and json_size(props) > MAX_EVENT_PROPERTIES_BYTES:
        raise ObjectError(f"'{where}' is larger than {MAX_EVENT_PROPERTIES_BYTES // 1024} KB")


def _check_time(obj: dict) -> None:
    if "time" not in obj:
        raise ObjectError("'time' is required")
    value = obj["time"]
    if is_braze_time(value):
        return
    if is_number(value) or (isinstance(value, str) and value.strip().lstrip("+-").isdigit()):
        raise ObjectError("'time' must be a date string (e.g. 2024-05-02T10:00:00Z), not a number")
    if isinstance(value, str) and looks_like_time(value):
        raise ObjectError(
            f"'time' is not a real date in the years 1 to {MAX_TIME_YEAR} (counted in UTC)"
        )
    raise ObjectError("'time' must be a date string in a format Braze accepts")


def _check_app_id(obj: dict) -> None:
    if obj.get("app_id") is not None and not isinstance(obj["app_id"], str):
        raise ObjectError("'app_id' must be a string")


def validate_event_object(obj: object) -> dict:
    obj = _check_identifier_and_flags(obj)
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        raise ObjectError("'name' is required and must be a non-empty string")
    if len(name) > MAX_STRING_LENGTH:
        raise ObjectError(f"'name' is longer than {MAX_STRING_LENGTH} characters")
    _check_time(obj)
    _check_app_id(obj)
    _check_properties(obj.get("properties"), "properties")
    return obj


def validate_purchase_object(obj: object) -> dict:
    obj = _check_identifier_and_flags(obj)
    product_id = obj.get("product_id")
    if not isinstance(product_id, str) or not product_id:
        raise ObjectError("'product_id' is required and must be a non-empty string")
    if len(product_id) > MAX_STRING_LENGTH:
        raise ObjectError(f"'product_id' is longer than {MAX_STRING_LENGTH} characters")
    currency = obj.get("currency")
    if not isinstance(currency, str) or currency.upper() not in CURRENCIES:
        raise ObjectError("'currency' must be an ISO 4217 alphabetic currency code")
    if not is_number(obj.get("price")):
        raise ObjectError("'price' is required and must be a number")
    quantity = obj.get("quantity", 1)
    if (
        not isinstance(quantity, int)
        or isinstance(quantity, bool)
        or not 1 <= quantity <= MAX_PURCHASE_QUANTITY
    ):
        raise ObjectError(f"'quantity' must be an integer from 1 to {MAX_PURCHASE_QUANTITY}")
    _check_time(obj)
    _check_app_id(obj)
    _check_properties(obj.get("properties"), "properties")
    return obj


@dataclass
class TrackRequest:
    """A parsed ``/users/track`` body: the valid objects with their input positions, and
    one Braze-shaped error per invalid object."""

    attributes: list[tuple[int, dict]] = field(default_factory=list)
    events: list[tuple[int, dict]] = field(default_factory=list)
    purchases: list[tuple[int, dict]] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    sent: tuple[str, ...] = ()

    def refuse(self, name: str, index: int, reason: str) -> None:
        """Turn a valid object into a per-object error after all (its backend could not
        apply it): it leaves ``name``'s valid list and is answered with ``reason``."""
        valid = getattr(self, name)
        setattr(self, name, [(i, obj) for i, obj in valid if i != index])
        self.errors.append({"type": reason, "input_array": name, "index": index})

    @property
    def valid_count(self) -> int:
        return len(self.attributes) + len(self.events) + len(self.purchases)

    def response(self, processed: dict[str, int] | None = None) -> tuple[int, dict]:
        """Braze's 201 body: ``*_processed`` for each array sent, plus non-fatal errors."""
        body: dict = {"message": "success"}
        for name in self.sent:
            count = (processed or {}).get(name, len(getattr(self, name)))
            body[f"{name}_processed"] = count
        if self.errors:
            body["errors"] = self.errors
        return 201, body


_VALIDATORS = {
    "attributes": validate_attributes_object,
    "events": validate_event_object,
    "purchases": validate_purchase_object,
}


def parse_track_request(
    body: object,
    *,
    policy: BatchPolicy = BatchPolicy.COMBINED,
    max_array_items: int = DEFAULT_MAX_ARRAY_ITEMS,
) -> TrackRequest:
    """Validate a decoded JSON body. Raises BrazeError(400) when nothing can be processed."""
    if not isinstance(body, dict):
        raise BrazeError(400, MSG_NO_VALID_DATA)
    arrays: dict[str, list] = {}
    for name in TRACK_ARRAYS:
        if name not in body or body[name] is None:
            continue
        if not isinstance(body[name], list):
            raise BrazeError(400, f"'{name}' must be an array of objects")
        arrays[name] = body[name]
    if not any(arrays.values()):
        raise BrazeError(400, MSG_NO_VALID_DATA)
    if objects_over_limit({k: len(v) for k, v in arrays.items()}, policy):
        raise BrazeError(400, MSG_MAX_INPUT)
    request = TrackRequest(sent=tuple(arrays))
    for name, objects in arrays.items():
        valid = getattr(request, name)
        for index, obj in enumerate(objects):
            try:
                if name == "attributes":
                    cleaned = validate_attributes_object(obj, max_array_items=max_array_items)
                else:
                    cleaned = _VALIDATORS[name](obj)
            except ObjectError as exc:
                request.errors.append({"type": exc.type, "input_array": name, "index": index})
            else:
                valid.append((index, cleaned))
    if request.valid_count == 0:
        raise BrazeError(400, MSG_NO_VALID_DATA, request.errors)
    return request
