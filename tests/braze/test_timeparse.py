from datetime import UTC, datetime

import pytest

from headwater.braze.timeparse import format_braze_time, parse_braze_time


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
