"""The SQL fast paths only ever accept what email-validator and phonenumbers accept, with
the same cleaned value; everything else is left to the libraries."""

from __future__ import annotations

import random

import duckdb
import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.identity import emails, phones


def _fast(values: list[str], module, sql) -> dict[str, str]:
    con = duckdb.connect()
    con.execute("CREATE TABLE t0 (raw VARCHAR)")
    con.executemany("INSERT INTO t0 VALUES (?)", [[v] for v in values])
    con.execute(f"CREATE TABLE t AS SELECT raw, {module.prepare_sql('raw')} AS c FROM t0")
    return dict(con.execute(sql(con)).fetchall())


def _phone_fast(values: list[str], region: str | None) -> dict[str, str]:
    def sql(con):
        codes = [r[0] for r in con.execute(phones.plus_codes_sql("t")).fetchall()]
        return phones.fast_e164_sql("t", region, codes)

    return _fast(values, phones, sql)


def _sample_phones(seed: int) -> list[str]:
    rng = random.Random(seed)
    regions = sorted(phonenumbers.SUPPORTED_REGIONS)
    values = []
    for region in rng.sample(regions, 40) + ["US", "GB", "FR", "IT", "DE", "CA", "RU"]:
        for kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            for fmt in (
                phonenumbers.PhoneNumberFormat.E164,
                phonenumbers.PhoneNumberFormat.INTERNATIONAL,
                phonenumbers.PhoneNumberFormat.NATIONAL,
            ):
                text = phonenumbers.format_number(example, fmt)
                values.append(text)
                digits = [i for i, c in enumerate(text) if c.isdigit()]
                for _ in range(2):  # near misses: one digit changed
                    chars = list(text)
                    chars[rng.choice(digits[-5:])] = str(rng.randint(0, 9))
                    values.append("".join(chars))
    values += [
        "+1 (415) 555-0123",
        "415.555.0123",
        "14155550123",
        "011 44 20 7946 0958",
        "+44 020 7946 0958",
        "(415) 555 0123 x12",
        "+1-800-FLOWERS",
        "+",
        "+0",
        "00",
        "8 800 555 35 35",
        "+7 800 555 35 35",
        "0 800 555 35 35",
    ]
    return list(dict.fromkeys(values))


@pytest.mark.parametrize("region", ["US", "GB", "RU", None])
def test_fast_phones_agree_with_phonenumbers(region):
    values = _sample_phones(7)
    fast = _phone_fast(values, region)
    assert fast, "the fast path accepts the plain forms"
    for value, e164 in fast.items():
        assert phones.normalize_phone(value, region) == (e164, None), value


@settings(deadline=None, max_examples=25)
@given(
    st.lists(st.text(alphabet="+0123456789 ()-.", min_size=1, max_size=18), min_size=1, max_size=20)
)
def test_fast_phones_never_accept_what_the_library_refuses(values):
    fast = _phone_fast(values, "US")
    for value, e164 in fast.items():
        assert phones.normalize_phone(value, "US") == (e164, None), value


EMAILS = [
    "a@b.co",
    " A.B@Example.COM ",
    "x@localhost",
    "x@foo.test",
    "a..b@x.com",
    "a@x--y.com",
    "user+tag@sub.example.org",
    "u@xn--bcher-kva.ch",
    "x@123.com",
    "x@a.b1",
    "é@x.com",
    "a@x.c",
    ".a@x.com",
    "a.@x.com",
    "a@-x.com",
    "a@x-.com",
    "a" * 65 + "@x.com",
    "a@" + "b" * 64 + ".com",
    "a_b%c@x.io",
    "a@b.onion",
    "a@b.local",
    '"q"@x.com',
    "a@b@c.com",
]


@settings(deadline=None, max_examples=25)
@given(
    st.lists(
        st.from_regex(r"[ A-Za-z0-9._%+\-]{1,12}@[A-Za-z0-9.\-]{1,12}", fullmatch=True), max_size=20
    )
)
def test_fast_emails_agree_with_email_validator(generated):
    fast = _fast(EMAILS + generated, emails, lambda con: emails.fast_email_sql("t"))
    assert "a@b.co" in fast and " A.B@Example.COM " in fast
    for value, cleaned in fast.items():
        assert emails.normalize_email(value) == (cleaned, None), value


def test_the_library_path_trims_lowercases_and_explains():
    assert emails.normalize_email("  Ann@Example.COM ") == ("ann@example.com", None)
    value, reason = emails.normalize_email("not-an-email")
    assert value is None and reason.startswith("not a valid email")
    assert phones.normalize_phone("(415) 555-0123", "US") == ("+14155550123", None)
    value, reason = phones.normalize_phone("4155550123", None)
    assert value is None and "default_region" in reason
