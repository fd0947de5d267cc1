from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.braze.timeparse import (
    MAX_TIME_YEAR,
    format_braze_time,
    is_braze_time,
    parse_braze_time,
    parse_epoch_seconds,
)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2024-05-02T10:00:00Z", datetime(2024, 5, 2, 10, tzinfo=UTC)),
        ("2013-07-16T19:20:30+01:00", datetime(2013, 7, 16, 18, 20, 30, tzinfo=UTC)),
        ("2024-05-02T10:00:00:250Z", datetime(2024, 5, 2, 10, 0, 0, 250000, tzinfo=UTC)),
        ("2024-05-02T10:00:00", datetime(2024, 5, 2, 10, tzinfo=UTC)),
        ("2024-05-02 10:00:00", datetime(2024, 5, 2, 10, tzinfo=UTC)),
        ("2024-05-02", datetime(2024, 5, 2, tzinfo=UTC)),
        ("05/02/2024", datetime(2024, 5, 2, tzinfo=UTC)),
    ],
)
def test_every_documented_format_parses_to_utc(text, expected):
    assert parse_braze_time(text) == expected


@pytest.mark.parametrize(
    "text", ["yesterday", "3001-01-01", "", "12345678", 20240502, None, "2024-13-40"]
)
def test_non_times_are_not_times(text):
    assert parse_braze_time(text) is None


def test_times_are_written_back_with_milliseconds_and_z():
    assert (
        format_braze_time(datetime(2024, 5, 2, 10, 0, 0, 123456, tzinfo=UTC))
        == "2024-05-02T10:00:00.123Z"
    )


# ---- extreme numbers and dates: never an exception, only a time or None -------------------

ZONES = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


def _in_range(parsed: datetime) -> bool:
    return parsed.tzinfo is UTC and 1 <= parsed.year <= MAX_TIME_YEAR


@pytest.mark.parametrize(
    "text",
    [
        "0001-01-01T00:00:00+01:00",  # year 0 in UTC: was an OverflowError (a sandbox 500)
        "0001-01-01T00:00:00+14:00",
        "0001-01-01T05:59:59+06:00",
        "3000-12-31T23:00:00-05:00",  # year 3001 in UTC
        "9999-12-31T23:59:59-01:00",  # past datetime's range in UTC
    ],
)
def test_times_outside_years_1_to_3000_in_utc_are_not_times(text):
    assert parse_braze_time(text) is None
    assert not is_braze_time(text)


def test_the_first_and_last_instants_are_times_and_written_back_with_four_digit_years():
    first = parse_braze_time("0001-01-01T00:00:00Z")
    assert first == datetime(1, 1, 1, tzinfo=UTC)
    assert format_braze_time(first) == "0001-01-01T00:00:00.000Z"
    assert parse_braze_time(format_braze_time(first)) == first
    assert parse_braze_time("3000-12-31T23:59:59.999Z").year == 3000


@settings(deadline=None, max_examples=300)
@given(st.datetimes(timezones=ZONES), st.sampled_from(["T", " "]))
def test_any_iso_time_with_any_offset_parses_or_is_refused_never_raises(dt, sep):
    text = dt.isoformat(sep=sep)
    parsed = parse_braze_time(text)
    assert is_braze_time(text) == (parsed is not None)
    if parsed is None:
        return
    assert _in_range(parsed)
    assert parsed == dt  # the same instant
    written = format_braze_time(parsed)
    assert parse_braze_time(written) == parsed.replace(
        microsecond=parsed.microsecond // 1000 * 1000
    )


@settings(deadline=None, max_examples=300)
@given(st.text(max_size=45) | st.from_regex(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}[T ].{0,30}\Z"))
def test_any_text_parses_or_is_refused_never_raises(text):
    parsed = parse_braze_time(text)
    assert parsed is None or _in_range(parsed)


@settings(deadline=None, max_examples=300)
@given(
    st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.sampled_from([1e20, -1e15, 10**20, -(10**15), 2**63, -(2**63), 253402300800])
)
def test_epoch_seconds_of_any_size_give_a_time_in_range_or_none(value):
    parsed = parse_epoch_seconds(value)
    if parsed is not None:
        assert _in_range(parsed)
        assert abs((parsed - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() - value) < 1


def test_epoch_seconds_that_are_not_numbers_are_not_times():
    for value in (True, "1714644000", None, [1], {"s": 1}):
        assert parse_epoch_seconds(value) is None
    assert parse_epoch_seconds(1714644000) == datetime(2024, 5, 2, 10, tzinfo=UTC)
