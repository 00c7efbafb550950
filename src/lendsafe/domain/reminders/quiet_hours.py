"""Quiet hours and frequency caps, evaluated on the borrower's local wall clock.

Pure: no clock and no I/O. Every instant is an aware ``datetime``; time zones are
``tzinfo`` objects (normally ``zoneinfo.ZoneInfo``) resolved by the caller.

Wall-clock rules (daylight-saving safe):

* A quiet window ``[start, end)`` is a range of local wall-clock times; it wraps
  midnight when ``start > end`` (``21:00-08:00``). An instant is *quiet* when the
  wall clock in the borrower's zone shows a time inside any window.
* A local date and time is turned into an instant with :func:`resolve_local`:
  the **first instant at which the wall clock reads that time or later**. For an
  ambiguous time (clocks go back, the time occurs twice) that is the earlier
  occurrence (``fold=0``); for a time that does not exist (clocks go forward)
  it is the transition instant itself, i.e. the first real instant after the gap.
* :func:`next_allowed_time` returns the earliest instant at or after the
  candidate that is not quiet; after clocks go back a wall time can repeat, so a
  time that was allowed once may be quiet again in the repeated hour - the
  function works on instants and handles that.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

_DAY_MINUTES = 24 * 60
_MAX_STEPS = 256


@dataclass(frozen=True)
class QuietWindow:
    """One local wall-clock window ``[start, end)``; wraps midnight if ``start > end``."""

    start: time
    end: time

    def __post_init__(self) -> None:
        for t in (self.start, self.end):
            if t.tzinfo is not None or t.second or t.microsecond:
                raise ValueError(f"quiet window bounds must be naive HH:MM times, got {t}")
        if self.start == self.end:
            raise ValueError("quiet window start and end are equal (empty or whole day?)")

    @property
    def wraps(self) -> bool:
        """True when the window spans local midnight."""
        return self.start > self.end

    def contains(self, wall: time) -> bool:
        """True when the local time of day ``wall`` lies inside the window."""
        wall = wall.replace(tzinfo=None)
        if self.wraps:
            return wall >= self.start or wall < self.end
        return self.start <= wall < self.end

    def end_date_for(self, local: datetime) -> date:
        """Local date on which the window containing ``local`` ends."""
        if self.wraps and local.time() >= self.start:
            return local.date() + timedelta(days=1)
        return local.date()

    def minutes(self) -> set[int]:
        """Minutes of the day (0..1439) covered by the window."""
        start = self.start.hour * 60 + self.start.minute
        end = self.end.hour * 60 + self.end.minute
        if end < start:
            end += _DAY_MINUTES
        return {m % _DAY_MINUTES for m in range(start, end)}


@dataclass(frozen=True)
class QuietHours:
    """A union of quiet windows; at least one minute of the day must stay open."""

    windows: tuple[QuietWindow, ...] = ()

    def __post_init__(self) -> None:
        covered: set[int] = set()
        for window in self.windows:
            covered |= window.minutes()
        if len(covered) >= _DAY_MINUTES:
            raise ValueError("quiet hours cover the whole day; nothing could ever be sent")

    def union(self, other: QuietHours) -> QuietHours:
        """Quiet whenever either side is quiet (used to add a legal hard bound)."""
        merged = self.windows + tuple(w for w in other.windows if w not in self.windows)
        return QuietHours(merged)

    def leaves_time_with(self, other: QuietHours) -> bool:
        """True when the union with ``other`` still leaves some minute of the day open."""
        covered: set[int] = set()
        for window in self.windows + other.windows:
            covered |= window.minutes()
        return len(covered) < _DAY_MINUTES

    def window_at(self, wall: time) -> QuietWindow | None:
        """The first window containing the local time of day ``wall``, if any."""
        for window in self.windows:
            if window.contains(wall):
                return window
        return None

    def is_quiet(self, instant: datetime, tz: tzinfo) -> bool:
        """True when ``instant`` shows a quiet wall-clock time in ``tz``."""
        return self.window_at(local_wall(instant, tz).time()) is not None


@dataclass(frozen=True)
class Caps:
    """Frequency caps per loan: per local calendar day and per rolling 7x24 hours."""

    per_day: int
    per_week: int

    def __post_init__(self) -> None:
        if self.per_day < 1 or self.per_week < 1:
            raise ValueError("caps must be positive")
        if self.per_day > self.per_week:
            raise ValueError("per_day cap exceeds per_week cap")


def _require_aware(instant: datetime, name: str) -> None:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime, got naive {instant!r}")


def local_wall(instant: datetime, tz: tzinfo) -> datetime:
    """The naive local wall-clock reading of ``instant`` in ``tz``."""
    _require_aware(instant, "instant")
    return instant.astimezone(tz).replace(tzinfo=None)


def _instances_of(wall: datetime, tz: tzinfo) -> list[datetime]:
    """UTC instants at which the wall clock in ``tz`` reads exactly ``wall``."""
    found: list[datetime] = []
    for fold in (0, 1):
        utc = wall.replace(tzinfo=tz, fold=fold).astimezone(UTC)
        if local_wall(utc, tz) == wall and utc not in found:
            found.append(utc)
    return found


def _gap_end(wall: datetime, tz: tzinfo) -> datetime:
    """First instant after a DST gap that swallows the non-existent ``wall``.

    Transitions happen on whole UTC seconds, so a bisection over integer
    timestamps between the two fold interpretations finds it exactly.
    """
    a = int(wall.replace(tzinfo=tz, fold=1).timestamp())
    b = int(wall.replace(tzinfo=tz, fold=0).timestamp())
    lo, hi = min(a, b), max(a, b) + 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if local_wall(datetime.fromtimestamp(mid, UTC), tz) >= wall:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


def first_instant_reaching(wall: datetime, tz: tzinfo, not_before: datetime) -> datetime:
    """Earliest instant ``u >= not_before`` whose local wall clock reads ``wall`` or later."""
    _require_aware(not_before, "not_before")
    if local_wall(not_before, tz) >= wall:
        return not_before.astimezone(UTC)
    options = _instances_of(wall, tz) or [_gap_end(wall, tz)]
    later = [u for u in options if u >= not_before]
    if not later:
        raise ArithmeticError(f"wall time {wall} never reached after {not_before} in {tz}")
    return min(later)


def resolve_local(day: date, at: time, tz: tzinfo) -> datetime:
    """UTC instant for local ``day`` ``at``: earlier fold if ambiguous, gap end if missing."""
    wall = datetime.combine(day, at.replace(tzinfo=None))
    options = _instances_of(wall, tz) or [_gap_end(wall, tz)]
    return min(options)


def next_allowed_time(candidate_utc: datetime, tz: tzinfo, quiet_hours: QuietHours) -> datetime:
    """Earliest instant at or after ``candidate_utc`` that is outside quiet hours, in UTC."""
    _require_aware(candidate_utc, "candidate_utc")
    instant = candidate_utc.astimezone(UTC)
    for _ in range(_MAX_STEPS):
        local = local_wall(instant, tz)
        window = quiet_hours.window_at(local.time())
        if window is None:
            return instant
        end_wall = datetime.combine(window.end_date_for(local), window.end)
        instant = first_instant_reaching(end_wall, tz, instant)
    raise ArithmeticError(f"no allowed send time found after {candidate_utc} in {tz}")


def start_of_next_local_day(instant: datetime, tz: tzinfo) -> datetime:
    """First instant of the local calendar day after the one ``instant`` falls on."""
    next_day = local_wall(instant, tz).date() + timedelta(days=1)
    return first_instant_reaching(datetime.combine(next_day, time(0)), tz, instant)


def within_caps(
    sent_times_utc: Iterable[datetime], candidate_utc: datetime, tz: tzinfo, caps: Caps
) -> bool:
    """True if one more send at ``candidate_utc`` keeps a loan within ``caps``.

    ``sent_times_utc`` are the loan's earlier contacts (one per delivered step).
    The day cap counts contacts on the same *local* calendar date as the
    candidate; the week cap counts contacts in the rolling window of 7x24 hours
    ending at the candidate, ``(candidate - 7 days, candidate]``, measured in
    absolute time so that a DST change cannot stretch or shrink it.
    """
    _require_aware(candidate_utc, "candidate_utc")
    times: Sequence[datetime] = list(sent_times_utc)
    day = local_wall(candidate_utc, tz).date()
    week_start = candidate_utc - timedelta(days=7)
    same_day = sum(1 for t in times if local_wall(t, tz).date() == day)
    in_week = sum(1 for t in times if week_start < t <= candidate_utc)
    return same_day < caps.per_day and in_week < caps.per_week


def effective_quiet_hours(own: QuietHours | None, default: QuietHours,
                          legal: QuietHours) -> QuietHours:
    """The quiet hours a message to one borrower obeys: the borrower's own (else the
    policy default) united with the legal bound. A borrower's own hours that would leave
    no minute of the day open together with the legal bound are set aside for the default,
    so a preference can never make a legally required notice impossible to send."""
    if own is not None and own.leaves_time_with(legal):
        return own.union(legal)
    return default.union(legal)
