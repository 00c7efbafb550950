"""Helpers for servicing tests: build a loan state and run business days on it."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from lendsafe.domain import events as ev
from lendsafe.domain.calendar import DayCount, Frequency
from lendsafe.domain.lending.loan import LoanState, ServicingRules, close_day, open_loan
from lendsafe.domain.lending.product import LoanType, Prepayment, Term, TermUnit
from lendsafe.domain.lending.restructure import ChangeKind, KindPolicy, RestructuringPolicy
from lendsafe.domain.lending.schedule import LoanTerms, build_schedule
from lendsafe.domain.money import Rounding, currency


def rules_for(terms: LoanTerms, *, penalty_ppm: int = 180_000, grace: int = 3,
              charge_off: int = 90, prepayment: Prepayment = Prepayment.REDUCE_TERM,
              ) -> ServicingRules:
    return ServicingRules(
        type=terms.type, annual_rate=terms.annual_rate, day_count=terms.day_count,
        rounding=terms.rounding, frequency=terms.frequency,
        periodic_fee_minor=terms.periodic_fee_minor, penalty_rate_ppm=penalty_ppm,
        grace_days=grace, charge_off_days=charge_off, prepayment=prepayment,
    )


def monthly_terms(principal: int, rate: str, months: int, start: date,
                  kind: LoanType = LoanType.ANNUITY,
                  day_count: DayCount = DayCount.THIRTY_360) -> LoanTerms:
    return LoanTerms(kind, currency("CNY"), principal, Decimal(rate), start,
                     Term(months, TermUnit.MONTHS), Frequency.MONTHLY, day_count,
                     Rounding.HALF_UP)


def open_state(terms: LoanTerms, **rule_options: object) -> tuple[LoanState, list[ev.LoanEvent]]:
    return open_loan(1, terms.start, build_schedule(terms), rules_for(terms, **rule_options))  # type: ignore[arg-type]


def run_days(state: LoanState, until: date,
             events: list[ev.LoanEvent] | None = None) -> LoanState:
    """Close every business date from the loan's open date up to and including ``until``."""
    on = state.open_date
    while on <= until:
        state, new = close_day(state, on)
        if events is not None:
            events.extend(new)
        on += timedelta(days=1)
    return state


JournalKey = tuple[str, str, str, int]


def journal_by_loan(engine: Any) -> dict[int, Counter[JournalKey]]:
    """The stored journal per loan as a multiset of (kind, debit, credit, amount)."""
    from sqlalchemy import select

    from lendsafe.adapters.db import tables as t

    result: dict[int, Counter[JournalKey]] = {}
    with engine.connect() as connection:
        for row in connection.execute(select(t.journal)):
            key = (row.kind, row.debit_account, row.credit_account, row.amount_minor)
            result.setdefault(row.loan_id, Counter())[key] += 1
    return result


def posted(events: list[ev.LoanEvent]) -> Counter[JournalKey]:
    """The transfers the posting rules make of ``events``, as the same multiset."""
    from lendsafe.domain.ledger.posting import postings

    return Counter((p.kind, p.debit.value, p.credit.value, p.amount_minor)
                   for event in events for p in postings(event))


def open_policy(*, max_per_loan: int = 9, count_max: int = 24, days_max: int = 120,
                fee_max_minor: int = 10_000, changes_max: int = 9) -> RestructuringPolicy:
    """A restructuring policy that allows every kind without approval, within the limits."""
    return RestructuringPolicy(
        {k: KindPolicy(k, max_per_loan=max_per_loan, count_max=count_max, days_max=days_max,
                       fee_max_minor=fee_max_minor, approval=False) for k in ChangeKind},
        changes_max=changes_max)
