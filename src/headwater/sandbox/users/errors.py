"""The user endpoints' own Braze-shaped messages (merge's are documented verbatim)."""

MERGE_ARRAY = "'merge_updates' must be an array of objects"
MERGE_TOO_MANY = "a single request may not contain more than 50 merge updates"
MERGE_IDENTIFIERS = (
    "identifiers must be objects with an 'external_id' property that is a string, "
    "'user_alias' property that is an object, 'email' property that is a string, "
    "or 'phone' property that is a string"
)
MERGE_KEYS = "'merge_updates' must only have 'identifier_to_merge' and 'identifier_to_keep'"
TOO_MANY_ITEMS = "a single request may not contain more than 50 items"
ONE_SELECTOR = "only one of 'device_id', 'email_address' or 'phone' may be given"
FIELDS_TYPE = "'fields_to_export' must be an array of strings"
NO_IDENTIFIER = (
    "provide 'external_ids', 'user_aliases', 'braze_id', 'device_id', 'email_address' or 'phone'"
)
IDENTIFY_EMPTY = (
    "provide 'aliases_to_identify', 'emails_to_identify' or 'phone_numbers_to_identify'"
)
EXTERNAL_ID_REQUIRED = "'external_id' is required and must be a string"
ALIAS_NOT_FOUND = "no user has that 'user_alias'"
ALIAS_EXISTS = "a user already has that alias"
PRIORITIZATION = (
    "'prioritization' must be an array of 'identified' or 'unidentified' (not both), "
    "'most_recently_updated', 'least_recently_updated'"
)
DELETE_KINDS = ("external_ids", "user_aliases", "braze_ids", "email_addresses", "phone_numbers")
DELETE_ONE_KIND = (
    "provide exactly one of 'external_ids', 'user_aliases', 'braze_ids', "
    "'email_addresses' or 'phone_numbers'"
)


def must_be_array(name: str) -> str:
    return f"'{name}' must be an array"


def unknown_fields(fields: list[str]) -> str:
    return f"'fields_to_export' has fields Braze does not export: {', '.join(fields[:10])}"


def identify_fields(field: str) -> str:
    return f"'external_id' and '{field}' are required and must be strings"


def bad_delete_item(kind: str) -> str:
    return f"'{kind}' has an item of the wrong shape"
