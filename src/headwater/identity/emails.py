"""Email addresses: trimmed, lower-cased, and kept out when email-validator refuses them.

email-validator costs ~90 µs an address here, so plain addresses (dot-atom local part of
``[a-z0-9_%+-]``, ASCII host names with an alphabetic top-level domain, within the lengths
of RFC 5321, not under a special-use domain) are accepted in SQL; every other value goes
to ``email_validator.validate_email`` itself. The SQL subset is one the library accepts
unchanged: tests/identity/test_emails.py checks it against the library.
"""

from __future__ import annotations

import email_validator

from headwater.identity.dialect import full_match, search

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


def prepare_sql(raw: str) -> str:
    """The text the fast path tests: trimmed and lower-cased (computed once, in a table)."""
    return f"lower(trim({raw}))"


def fast_email_sql(table: str, dialect: str = "duckdb") -> str:
    """SELECT r, v: the plain addresses among ``table`` (raw, c), c = ``prepare_sql(raw)``."""
    names = "|".join(sorted(email_validator.SPECIAL_USE_DOMAIN_NAMES)) or "$^"
    domain = "split_part(c, '@', 2)"
    return (
        f"SELECT raw AS r, c AS v FROM {table} "
        f"WHERE {full_match(dialect, 'c', FAST_EMAIL_PATTERN)} AND length(c) <= 254 "
        f"AND length(split_part(c, '@', 1)) <= 64 AND length({domain}) <= 253 "
        f"AND strpos({domain}, '--') = 0 AND NOT {search(dialect, 'c', f'[@.]({names})$')}"
    )
