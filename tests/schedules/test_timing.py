"""Fire times from a given instant: intervals, crons in a time zone across both daylight
saving changes, start and end; and, over many zones and instants, that no slot repeats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.config import Schedule
from headwater.schedules.timing import fire_times, latest_fire, next_fire

PARIS = ZoneInfo("Europe/Paris")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_every_fires_on_fixed_slots_counted_from_the_epoch():
    every = Schedule(every="15m")
    assert fire_times(every, utc(2026, 5, 1, 10, 7), 3) == [
        utc(2026, 5, 1, 10, 15), utc(2026, 5, 1, 10, 30), utc(2026, 5, 1, 10, 45),
    ]  # fmt: skip
    assert next_fire(every, utc(2026, 5, 1, 10, 15)) == utc(2026, 5, 1, 10, 30)
    assert latest_fire(every, utc(2026, 5, 1, 10, 44, 59)) == utc(2026, 5, 1, 10, 30)


def test_every_counts_from_start_and_stops_at_end():
    every = Schedule(every="1h", start="2026-05-01T10:20:00", end="2026-05-01T13:00:00")
    # Naive start and end are read in the schedule's zone (UTC here).
    assert fire_times(every, utc(2026, 4, 1), 10) == [
        utc(2026, 5, 1, 10, 20), utc(2026, 5, 1, 11, 20), utc(2026, 5, 1, 12, 20),
    ]  # fmt: skip
    assert latest_fire(every, utc(2026, 5, 1, 10)) is None
    assert latest_fire(every, utc(2026, 6, 1)) == utc(2026, 5, 1, 12, 20)


def test_a_cron_is_read_on_the_wall_clock_of_its_zone():
    nightly = Schedule(cron="0 2 * * *", timezone="Europe/Paris")
    winter, summer = (
        fire_times(nightly, utc(2026, 1, 10), 1),
        fire_times(nightly, utc(2026, 7, 9, 12), 1),
    )
    assert winter == [utc(2026, 1, 10, 1)]  # 02:00 CET
    assert summer == [utc(2026, 7, 10, 0)]  # 02:00 CEST


def test_a_time_skipped_when_clocks_spring_forward_fires_once_when_they_jump():
    # 2026-03-29, Paris: 02:00 CET becomes 03:00 CEST; 02:30 does not exist that night.
    nightly = Schedule(cron="30 2 * * *", timezone="Europe/Paris")
    times = fire_times(nightly, utc(2026, 3, 27), 4)
    assert times == [
        utc(2026, 3, 27, 1, 30),  # 02:30 CET
        utc(2026, 3, 28, 1, 30),
        utc(2026, 3, 29, 1, 0),  # the jump: 03:00 CEST, once
        utc(2026, 3, 30, 0, 30),  # 02:30 CEST
    ]
    half_hourly = Schedule(cron="*/30 * * * *", timezone="Europe/Paris")
    around = fire_times(half_hourly, utc(2026, 3, 29, 0, 15), 4)
    assert around == [utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1), utc(2026, 3, 29, 1, 30),
                      utc(2026, 3, 29, 2)]  # fmt: skip


def test_a_time_repeated_when_clocks_fall_back_fires_once():
    # 2026-10-25, Paris: 03:00 CEST becomes 02:00 CET; 02:30 happens twice.
    nightly = Schedule(cron="30 2 * * *", timezone="Europe/Paris")
    times = fire_times(nightly, utc(2026, 10, 24), 3)
    assert times == [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]
    # A scheduler waking inside the repeated hour does not fire the slot again.
    assert next_fire(nightly, utc(2026, 10, 25, 1, 15)) == utc(2026, 10, 26, 1, 30)
    assert latest_fire(nightly, utc(2026, 10, 25, 1, 45)) == utc(2026, 10, 25, 0, 30)


def test_after_schedules_have_no_fire_times_of_their_own():
    assert fire_times(Schedule(after="contacts"), utc(2026, 1, 1)) == []
    assert latest_fire(Schedule(after="contacts"), utc(2026, 1, 1)) is None


def test_instants_without_a_zone_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        next_fire(Schedule(every="1m"), datetime(2026, 1, 1))


ZONES = sorted(z for z in available_timezones() if "/" in z and not z.startswith("Etc/"))
CRONS = ["0 2 * * *", "30 2 * * *", "*/30 * * * *", "15 1-3 * * *", "0 0 * * 0", "45 23 * * *"]


@settings(max_examples=150, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    cron=st.sampled_from(CRONS),
    start=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2037, 12, 1)),
)
def test_fire_times_only_move_forward_and_each_wall_time_fires_at_most_once(zone, cron, start):
    schedule = Schedule(cron=cron, timezone=zone)
    after = start.replace(tzinfo=UTC)
    times = fire_times(schedule, after, 12)
    assert times == sorted(set(times)) and all(t > after for t in times)
    walls = [t.astimezone(ZoneInfo(zone)).replace(tzinfo=None, fold=0) for t in times]
    assert len(walls) == len(set(walls))  # a repeated wall time never fires twice
    # The slot a returning scheduler would run is the last one it passed.
    if len(times) >= 2:
        between = times[0] + (times[1] - times[0]) / 2
        assert latest_fire(schedule, between) == times[0]
        assert latest_fire(schedule, times[1]) == times[1]
    # And it is found again from any instant just before it.
    for t in times[:3]:
        assert next_fire(schedule, t - timedelta(seconds=1)) == t
