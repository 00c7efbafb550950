"""Day-count conventions, business-day calendars with rolling, and period generation.

The business date is always passed in; nothing here reads a clock. Holiday sets are
built outside the domain (from the ``holidays`` package and configured dates) and handed
in as plain ``frozenset[date]`` values.
"""

from __future__ import annotations

import calendar as _stdlib_calendar
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import Enum
from fractions import Fraction

EPOCH = date(1970, 1, 1)


def day_number(value: date) -> int:
    """Days since 1970-01-01: the integer form of a date used by set-based batch work."""
    return (value - EPOCH).days


def from_day_number(number: int) -> date:
    """The date of a day number (inverse of :func:`day_number`)."""
    return EPOCH + timedelta(days=number)


class DayCount(Enum):
    """How the length of an interest period is measured as a fraction of a year."""

    ACT_365F = "act/365f"
    ACT_360 = "act/360"
    THIRTY_360 = "30/360"

    def days(self, start: date, end: date) -> int:
        """The number of days between ``start`` and ``end`` under this convention."""
        if self is DayCount.THIRTY_360:
            return days_30_360(start, end)
        return (end - start).days

    def year_days(self) -> int:
        """The length of the convention's year in days."""
        return 365 if self is DayCount.ACT_365F else 360

    def year_fraction(self, start: date, end: date) -> Fraction:
        """The exact fraction of a year from ``start`` to ``end``."""
        return Fraction(self.days(start, end), self.year_days())


def days_30_360(start: date, end: date) -> int:
    """30/360 (US bond basis) day count: every month counts 30 days."""
    day1 = min(start.day, 30)
    day2 = end.day
    if day1 == 30 and day2 == 31:
        day2 = 30
    return 360 * (end.year - start.year) + 30 * (end.month - start.month) + (day2 - day1)


class Rolling(Enum):
    """What happens to a due date that falls on a non-business day."""

    NONE = "none"
    FOLLOWING = "following"
    MODIFIED_FOLLOWING = "modified-following"
    PRECEDING = "preceding"


@dataclass(frozen=True)
class BusinessCalendar:
    """Non-business days: weekends plus holidays, minus make-up working days."""

    name: str = "none"
    holidays: frozenset[date] = field(default_factory=frozenset)
    weekend: frozenset[int] = frozenset({5, 6})  # Saturday, Sunday (date.weekday())
    working_days: frozenset[date] = field(default_factory=frozenset)  # e.g. CN make-up days

    def is_business_day(self, value: date) -> bool:
        """True when ``value`` is a working day in this calendar."""
        if value in self.working_days:
            return True
        return value.weekday() not in self.weekend and value not in self.holidays

    def roll(self, value: date, rolling: Rolling) -> date:
        """Move ``value`` to a business day by ``rolling``."""
        if rolling is Rolling.NONE or self.is_business_day(value):
            return value
        if rolling is Rolling.PRECEDING:
            return self._step(value, -1)
        following = self._step(value, 1)
        if rolling is Rolling.MODIFIED_FOLLOWING and following.month != value.month:
            return self._step(value, -1)
        return following

    def _step(self, value: date, direction: int) -> date:
        current = value
        for _ in range(366):
            current += timedelta(days=direction)
            if self.is_business_day(current):
                return current
        raise ValueError(f"calendar {self.name!r} has no business day within a year of {value}")


NO_CALENDAR = BusinessCalendar(name="none", weekend=frozenset())


def add_months(start: date, months: int) -> date:
    """``start`` plus ``months`` calendar months, clamped to the end of a shorter month."""
    month_index = start.month - 1 + months
    year = start.year + month_index // 12
    month = month_index % 12 + 1
    last = _stdlib_calendar.monthrange(year, month)[1]
    return date(year, month, min(start.day, last))


class Frequency(Enum):
    """How often instalments fall due."""

    MONTHLY = "monthly"
    BIWEEKLY = "biweekly"
    WEEKLY = "weekly"

    @property
    def periods_per_year(self) -> int:
        """Nominal number of periods in a year (12, 26, 52)."""
        return {Frequency.MONTHLY: 12, Frequency.BIWEEKLY: 26, Frequency.WEEKLY: 52}[self]

    def nth_date(self, start: date, n: int) -> date:
        """The unadjusted date of the ``n``-th period end counted from ``start``."""
        if self is Frequency.MONTHLY:
            return add_months(start, n)
        step = 7 if self is Frequency.WEEKLY else 14
        return start + timedelta(days=step * n)


def due_dates(
    start: date, frequency: Frequency, count: int, calendar: BusinessCalendar, rolling: Rolling
) -> list[date]:
    """The ``count`` due dates of a regular schedule, each rolled to a business day.

    Dates are generated from the start date (never from a rolled date) so that rolling one
    due date does not shift the rest; a rolled date never moves before the previous one.
    """
    dates: list[date] = []
    for n in range(1, count + 1):
        rolled = calendar.roll(frequency.nth_date(start, n), rolling)
        if dates and rolled <= dates[-1]:
            rolled = calendar.roll(frequency.nth_date(start, n), Rolling.FOLLOWING)
        dates.append(rolled)
    return dates
