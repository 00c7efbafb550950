"""Business calendars built from the ``holidays`` package plus configured dates."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from functools import lru_cache

import holidays

from lendsafe.domain.calendar import NO_CALENDAR, BusinessCalendar

YEARS = range(2015, 2041)


@lru_cache(maxsize=32)
def business_calendar(
    name: str, extra_holidays: tuple[date, ...] = (), working_days: tuple[date, ...] = ()
) -> BusinessCalendar:
    """The calendar of a country code known to ``holidays`` (e.g. CN, US), or none."""
    if name.lower() == "none":
        return NO_CALENDAR
    try:
        country = holidays.country_holidays(name.upper(), years=YEARS)
    except NotImplementedError:
        raise ValueError(f"unknown business calendar {name!r}; use an ISO country code "
                         "such as CN or US, or none") from None
    days = frozenset(country.keys()) | frozenset(extra_holidays)
    return BusinessCalendar(name=name.upper(), holidays=days, working_days=frozenset(working_days))


def calendar_dates(values: Iterable[str]) -> tuple[date, ...]:
    """Parse ISO dates from configuration."""
    return tuple(date.fromisoformat(v) for v in values)
