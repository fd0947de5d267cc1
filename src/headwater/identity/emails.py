"""Email addresses: trimmed, lower-cased, and kept out when email-validator refuses them.

email-validator costs ~90 µs an address here, so plain addresses (dot-atom local part of
``[a-z0-9_%+-]``, ASCII host names with an alphabetic top-level domain, within the lengths
of RFC 5321, not under a special-use domain) are accepted in SQL; every other value goes
to ``email_validator.validate_email`` itself. The SQL subset is one the library accepts
unchanged: tests/identity/test_emails.py checks it against the library.
"""

from __future__ import annotations

import email_validator

from headwater.sources.base import quote_literal

_LOCAL = r"[a-z0-9_%+-]+(\.[a-z0-9_%+-]+)*"
_DOMAIN = r"([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"
FAST_EMAIL_PATTERN = f"{_LOCAL}@{_DOMAIN}"


def normalize_email(raw: str) -> tuple[str | None, str | None]:
    """(address, None) or (None, why not): email-validator's verdict on the trimmed,
    lower-cased value."""
    value = raw.strip().lower()
    try:
        result = email_validator.validate_email(value, check_deliverability=False)
    except email_validator.EmailNotValidError as exc:
        return None, f"not a valid email: {exc}"
    return result.normalized.lower(), None


def fast_email_sql(table: str, raw: str) -> str:
    """SELECT raw AS r, the address AS v for the plain values of ``table.raw``."""
    special = " OR ".join(
        f"d = {quote_literal(name)} OR ends_with(d, {quote_literal('.' + name)})"
        for name in email_validator.SPECIAL_USE_DOMAIN_NAMES
    )
    return (
        f"SELECT r, v FROM (SELECT r, v, split_part(v, '@', 1) AS l, split_part(v, '@', 2) AS d "
        f"FROM (SELECT {raw} AS r, lower(trim({raw})) AS v FROM {table}) "
        f"WHERE regexp_full_match(v, {quote_literal(FAST_EMAIL_PATTERN)})) "
        f"WHERE length(l) <= 64 AND length(v) <= 254 AND length(d) <= 253 "
        f"AND NOT contains(d, '--') AND NOT ({special or 'false'})"
    )
