"""When a schedule fires: pure functions of a schedule and an instant, no clock of their own.

Every instant in and out is timezone-aware; slots are UTC instants, so two processes (or a
process and its restart) compute the same slot for the same moment and the state store's
unique (job, slot) key makes it run once.

A cron is read on the wall clock of its time zone, which is not monotonic:
- a wall time that does not exist (the hour skipped when clocks spring forward) fires
  once, at the instant the clocks jump (as cron does: the job runs right after the change);
- a wall time that happens twice (the hour repeated when clocks fall back) fires once, at
  its first occurrence.
Both follow from mapping each cron wall time to one UTC instant and only ever moving
forward in UTC: wall times that map to the same instant are one slot.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, croniter

from headwater.config import Schedule

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# A cron that matches nothing for this many candidates (e.g. "0 0 31 2 *") never fires.
MAX_CRON_CANDIDATES = 1_000


def _wall_to_utc(wall: datetime, zone: ZoneInfo) -> datetime:
    """A naive wall time in ``zone`` as one UTC instant: the first of two for a repeated
    time, the moment the clocks jumped for a skipped one."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first  # exists (fold=0 is the first occurrence if it is repeated)
    # Skipped: fold=1 reads it with the offset after the jump (an instant before the jump),
    # fold=0 with the one before (an instant after it). The jump lies between: find the
    # first instant whose wall time is past ``wall``.
    low = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    high = first
    if low > high:
        low, high = high, low
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).replace(tzinfo=None) > wall:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)


def _next_cron(schedule: Schedule, after: datetime) -> datetime | None:
    zone = ZoneInfo(schedule.timezone)
    wall = after.astimezone(zone).replace(tzinfo=None)
    iterator = croniter(schedule.cron, wall)
    try:
        for _ in range(MAX_CRON_CANDIDATES):
            candidate = _wall_to_utc(iterator.get_next(datetime), zone)
            if candidate > after:
                return candidate
    except CroniterBadDateError:
        pass  # matches no date at all
    return None


def _next_every(schedule: Schedule, after: datetime) -> datetime:
    seconds = schedule.every_seconds
    assert seconds
    anchor = schedule.aware(schedule.start).astimezone(UTC) if schedule.start else EPOCH
    elapsed = (after - anchor).total_seconds()
    slots = int(elapsed // seconds) + 1 if elapsed >= 0 else 0
    return anchor + timedelta(seconds=slots * seconds)


def next_fire(schedule: Schedule, after: datetime) -> datetime | None:
    """The first slot strictly after ``after``; None for ``after:`` schedules and past
    ``end``."""
    if after.tzinfo is None:
        raise ValueError("instants must be timezone-aware")
    after = after.astimezone(UTC)
    if schedule.start is not None:
        before_start = schedule.aware(schedule.start).astimezone(UTC) - timedelta(microseconds=1)
        after = max(after, before_start)
    if schedule.every is not None:
        found = _next_every(schedule, after)
    elif schedule.cron is not None:
        found = _next_cron(schedule, after)
    else:
        return None
    if found is None or (schedule.end is not None and found > schedule.aware(schedule.end)):
        return None
    return found


def fire_times(schedule: Schedule, after: datetime, count: int = 5) -> list[datetime]:
    """The next ``count`` slots after ``after`` (fewer if the schedule ends)."""
    out: list[datetime] = []
    current = after
    while len(out) < count:
        found = next_fire(schedule, current)
        if found is None:
            break
        out.append(found)
        current = found
    return out


def latest_fire(schedule: Schedule, at: datetime) -> datetime | None:
    """The last slot at or before ``at`` (None if there is none): the one slot a scheduler
    that was away runs when it comes back, however many it missed."""
    if at.tzinfo is None:
        raise ValueError("instants must be timezone-aware")
    at = at.astimezone(UTC)
    if schedule.after is not None:
        return None
    if schedule.end is not None:
        at = min(at, schedule.aware(schedule.end).astimezone(UTC))
    if schedule.every is not None:
        seconds = schedule.every_seconds
        assert seconds
        anchor = schedule.aware(schedule.start).astimezone(UTC) if schedule.start else EPOCH
        if at < anchor:
            return None
        candidate = anchor + timedelta(
            seconds=int((at - anchor).total_seconds() // seconds) * seconds
        )
    else:
        zone = ZoneInfo(schedule.timezone)
        # Step back on the wall clock until a candidate lies at or before ``at``.
        iterator = croniter(
            schedule.cron, at.astimezone(zone).replace(tzinfo=None) + timedelta(seconds=1)
        )
        candidate = None
        try:
            for _ in range(MAX_CRON_CANDIDATES):
                found = _wall_to_utc(iterator.get_prev(datetime), zone)
                if found <= at:
                    candidate = found
                    break
        except CroniterBadDateError:
            pass
        if candidate is None:
            return None
    # Walk forward to the last slot <= at, which also applies start and end.
    if schedule.start is not None and candidate < schedule.aware(schedule.start):
        candidate = None
    probe = candidate or (
        schedule.aware(schedule.start).astimezone(UTC) - timedelta(microseconds=1)
        if schedule.start
        else None
    )
    if probe is None:
        return None
    while True:
        following = next_fire(schedule, probe)
        if following is None or following > at:
            break
        candidate = probe = following
    return candidate
