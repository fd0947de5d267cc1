"""Checks of single values against Braze's rules: emails, phones, currencies, keys, and
the standard profile fields' accepted values. Pure functions; each raises ObjectError."""

from __future__ import annotations

import re
from functools import lru_cache

import orjson
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
from email_validator import EmailNotValidError, validate_email

from headwater.braze.identifiers import ObjectError
from headwater.braze.limits import MAX_STRING_LENGTH

SUBSCRIBE_STATES = frozenset({"opted_in", "subscribed", "unsubscribed"})
GROUP_STATES = frozenset({"subscribed", "unsubscribed"})
GENDERS = {"m": "M", "male": "M", "f": "F", "female": "F", "o": "O", "other": "O",
           "n": "N", "not_applicable": "N", "p": "P", "prefer_not_to_say": "P"}  # fmt: skip
_PHONE_CHARS = re.compile(r"[\s\-().]")
_PHONE_DIGITS = re.compile(r"^\+?\d{7,15}$")
_DOB = re.compile(r"^\d{4}-\d{2}-\d{2}$")

# ISO 4217 alphabetic codes in current use.
CURRENCIES = frozenset(
    """
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP
BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP
GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR
KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK
MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR
SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD
TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XOF XPF YER ZAR ZMW ZWL
""".split()
)


def field_error(field: str, must: str) -> ObjectError:
    return ObjectError(f"The value provided for the '{field}' field {must}.")


# Plain ASCII addresses that email-validator always accepts; everything else (quoted
# parts, international domains, odd dots) goes through email-validator itself.
_PLAIN_EMAIL = re.compile(
    r"^(?=.{6,254}$)[A-Za-z0-9_%+\-]{1,64}(?:\.[A-Za-z0-9_%+\-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+([A-Za-z]{2,63})$"
)
_SPECIAL_USE_TLDS = frozenset({"arpa", "invalid", "local", "localhost", "onion", "test"})


def _email_ok(value: str) -> bool:
    plain = _PLAIN_EMAIL.match(value)
    if plain and plain.group(1).lower() not in _SPECIAL_USE_TLDS and len(value.split("@")[0]) <= 64:
        return True
    return _email_ok_slow(value)


@lru_cache(maxsize=65536)
def _email_ok_slow(value: str) -> bool:
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


# The plain-address rule in RE2 (Arrow's regex engine, no lookahead): stricter than
# _PLAIN_EMAIL, so every value it passes is one _email_ok passes too.
_PLAIN_EMAIL_RE2 = (
    r"^[A-Za-z0-9_%+\-]{1,64}(?:\.[A-Za-z0-9_%+\-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)

_SPECIAL_TLD_RE2 = r"\.(?:" + "|".join(sorted(_SPECIAL_USE_TLDS)) + r")$"


def plain_emails(values: pa.Array | pa.ChunkedArray) -> list[bool]:
    """Per value of an Arrow string array, whether it is an address ``check_email``
    passes, decided a column at a time (a sync checks millions). False means "check it
    one by one", not "invalid"."""
    ok = pc.and_(
        pc.match_substring_regex(values, _PLAIN_EMAIL_RE2),
        pc.and_(
            pc.less_equal(pc.find_substring(values, "@"), 64),
            pc.and_(
                pc.greater_equal(pc.utf8_length(values), 6),
                pc.less_equal(pc.utf8_length(values), 254),
            ),
        ),
    )
    special = pc.match_substring_regex(values, _SPECIAL_TLD_RE2, ignore_case=True)
    return pc.fill_null(pc.and_(ok, pc.invert(special)), False).to_pylist()


def check_email(value: object, field: str = "email") -> None:
    if value is None:
        return
    if not isinstance(value, str) or not _email_ok(value):
        raise field_error(field, "is not a valid email")


def check_phone(value: object, field: str = "phone") -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise field_error(field, "is not a valid phone number")
    compact = _PHONE_CHARS.sub("", value)
    if not _PHONE_DIGITS.match(compact):
        raise field_error(field, "is not a valid phone number")
    if compact.startswith("+"):
        try:
            ok = phonenumbers.is_possible_number(phonenumbers.parse(compact, None))
        except phonenumbers.NumberParseException:
            ok = False
        if not ok:
            raise field_error(field, "is not a valid phone number")


def check_short_string(value: object, field: str, *, nullable: bool = True) -> None:
    if value is None and nullable:
        return
    if not isinstance(value, str):
        raise field_error(field, "must be a string")
    if len(value) > MAX_STRING_LENGTH:
        raise field_error(field, f"is longer than {MAX_STRING_LENGTH} characters")


def check_key(key: object, where: str = "attribute") -> None:
    """Custom attribute and property names: non-empty, at most 255 chars, no leading $."""
    if not isinstance(key, str) or not key:
        raise ObjectError(f"{where} names must be non-empty strings")
    if len(key) > MAX_STRING_LENGTH:
        raise ObjectError(
            f"{where} name '{key[:40]}…' is longer than {MAX_STRING_LENGTH} characters"
        )
    if key.startswith("$"):
        raise ObjectError(f"{where} name '{key}' must not start with '$'")


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def json_size(value: object) -> int:
    return len(orjson.dumps(value))
