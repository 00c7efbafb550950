"""Mass relief events (epidemic, disaster): who is covered, what is offered, and the pure
reference of what applying relief does to one loan.

An event covers active loans of borrowers in its regions and/or of its segments (product
ids) from ``starts_on`` to ``ends_on``. Applied on the open business date P it gives each
covered loan a *relief window* [P, ends_on] — close of business accrues no penalty
interest on those days and does not count them as days past due (see
``lendsafe.domain.lending.loan``) — and, if the offer includes a deferral, moves every
instalment due on or after P ``deferral_days`` later: amounts unchanged, the current
instalment's period stretched over the holiday (its interest is not increased: holiday
interest is waived), later periods shifted whole. Accrued penalty may be waived. Overlapping
events (same days, intersecting coverage) are refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

from lendsafe.domain import events as ev
from lendsafe.domain import restructure_events as rev
from lendsafe.domain.lending.loan import LoanState, LoanStatus
from lendsafe.domain.lending.restructure import restart_date
from lendsafe.domain.problems import Problem, Refused

MODES = ("automatic", "offer")


@dataclass(frozen=True)
class ReliefOffer:
    """What covered loans get (the window itself always stops penalty and freezes DPD)."""

    deferral_days: int = 0
    waive_penalty: bool = False
    suppress_negative_reporting: bool = True


@dataclass(frozen=True)
class ReliefEvent:
    """A declared relief event."""

    name: str
    starts_on: date
    ends_on: date
    regions: frozenset[str] = frozenset()  # empty: every region
    segments: frozenset[str] = frozenset()  # product ids; empty: every product
    offer: ReliefOffer = ReliefOffer()
    mode: str = "automatic"  # automatic: applied to all; offer: deferral on acceptance

    def covers(self, region: str | None, product_id: str) -> bool:
        """True when a loan of ``product_id`` to a borrower in ``region`` is covered."""
        in_region = not self.regions or region in self.regions
        return in_region and (not self.segments or product_id in self.segments)

    def document(self) -> dict[str, Any]:
        """JSON form."""
        return {"name": self.name, "starts_on": self.starts_on.isoformat(),
                "ends_on": self.ends_on.isoformat(), "regions": sorted(self.regions),
                "segments": sorted(self.segments), "mode": self.mode,
                "offer": {"deferral_days": self.offer.deferral_days,
                          "waive_penalty": self.offer.waive_penalty,
                          "suppress_negative_reporting":
                              self.offer.suppress_negative_reporting,
                          "no_penalty_interest": True, "days_past_due_frozen": True}}


def _date(raw: Mapping[str, Any], key: str, problems: list[Problem]) -> date:
    value = raw.get(key)
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        problems.append(Problem("relief.field", f"{key} must be an ISO date, got {value!r}",
                                field=key))
        return date.min


def parse_event(raw: Mapping[str, Any]) -> ReliefEvent:
    """An event from parsed TOML, refusing every problem at once."""
    problems: list[Problem] = []
    name = str(raw.get("name", "")).strip()
    if not name:
        problems.append(Problem("relief.field", "name is required", field="name"))
    starts, ends = _date(raw, "starts_on", problems), _date(raw, "ends_on", problems)
    if not problems and ends < starts:
        problems.append(Problem("relief.window", f"ends_on {ends} is before starts_on {starts}",
                                field="ends_on"))
    mode = str(raw.get("mode", "automatic"))
    if mode not in MODES:
        problems.append(Problem("relief.field", f"mode must be one of {MODES}", field="mode"))
    offer_raw = raw.get("offer", {})
    days = int(offer_raw.get("deferral_days", 0))
    if not 0 <= days <= 366:
        problems.append(Problem("relief.field", "deferral_days must be 0 to 366",
                                field="offer.deferral_days"))
    if problems:
        raise Refused(problems)
    offer = ReliefOffer(days, bool(offer_raw.get("waive_penalty", False)),
                        bool(offer_raw.get("suppress_negative_reporting", True)))
    return ReliefEvent(name, starts, ends, frozenset(map(str, raw.get("regions", []))),
                       frozenset(map(str, raw.get("segments", []))), offer, mode)


def _intersects(a: frozenset[str], b: frozenset[str]) -> bool:
    return not a or not b or bool(a & b)


def overlap_problems(new: ReliefEvent,
                     existing: Iterable[tuple[int, ReliefEvent]]) -> list[Problem]:
    """A refusal for each declared event sharing days and coverage with ``new``."""
    return [
        Problem("relief.overlap", f"relief event {new.name!r} overlaps event {event_id} "
                f"({old.name!r}, {old.starts_on} to {old.ends_on}) on dates and coverage; "
                "end or narrow one of them", field="starts_on",
                figures={"event": str(event_id)})
        for event_id, old in existing
        if new.starts_on <= old.ends_on and old.starts_on <= new.ends_on
        and _intersects(new.regions, old.regions) and _intersects(new.segments, old.segments)
    ]


def window_problems(event: ReliefEvent, on: date) -> list[Problem]:
    """Relief is applied within the event's dates."""
    if event.starts_on <= on <= event.ends_on:
        return []
    return [Problem("relief.window", f"event {event.name!r} runs {event.starts_on} to "
                    f"{event.ends_on}; the open business date is {on}", field="event")]


def defer(state: LoanState, days: int) -> LoanState:
    """Every instalment due on or after the open date moves ``days`` later (amounts kept;
    the current period stretches, so its interest accrues more slowly)."""
    index = state.current_index()
    if days <= 0 or index is None:
        return state
    shift = timedelta(days=days)
    rows = list(state.installments)
    for position in range(index, len(rows)):
        row = rows[position]
        start = row.period_start if position == index else row.period_start + shift
        rows[position] = replace(row, period_start=start, due_date=row.due_date + shift)
    return replace(state, installments=tuple(rows), accrual_start=restart_date(state),
                   accrual_base=rows[index].interest_recognized)


def apply_relief(state: LoanState, event: ReliefEvent, event_id: int, on: date,
                 deferral: bool = True) -> tuple[LoanState, list[ev.LoanEvent]]:
    """The reference of applying ``event`` to one covered loan on the open date ``on``."""
    if state.status is not LoanStatus.ACTIVE:
        raise Refused([Problem("relief.status", f"loan {state.loan_id} is "
                               f"{state.status.value}; relief covers active loans")])
    problems = window_problems(event, on)
    if on != state.open_date:
        problems.append(Problem("relief.business_date", f"relief applies on the open "
                                f"business date {state.open_date}, not {on}"))
    if problems:
        raise Refused(problems)
    days = event.offer.deferral_days if deferral else 0
    state = replace(defer(state, days), relief_from=on, relief_until=event.ends_on)
    events: list[ev.LoanEvent] = [rev.ReliefApplied(state.loan_id, on, event_id, days)]
    if event.offer.waive_penalty and state.penalty_receivable > 0:
        events.append(rev.PenaltyWaived(state.loan_id, on, state.penalty_receivable))
        state = replace(state, penalty_recognized=state.penalty_paid)
    return state, events
