"""Repayment schedules: bullet, annuity (等额本息), equal principal (等额本金), interest-only.

Conventions (also in docs/concepts/schedules.md):

* Interest for a period = balance × annual rate × year fraction of the period under the
  product's day count, rounded to minor units by the product's rounding rule. Under 30/360
  a monthly period is exactly rate/12; under ACT/365F it follows the actual days (as
  Apache Fineract does).
* The annuity payment uses the nominal periodic rate (annual ÷ periods per year) and is
  rounded once by the product's rule; every instalment but the last pays it, and the last
  instalment absorbs the rounding so that principal repaid equals principal owed exactly.
* Equal principal: principal ÷ n rounded by the rule; the last instalment absorbs the rest.
* A whole-term rate (single-period loans only) gives principal × rate, never re-annualised.
"""

from __future__ import annotations

import decimal
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache

from lendsafe.domain.calendar import (
    NO_CALENDAR,
    BusinessCalendar,
    DayCount,
    Frequency,
    Rolling,
    due_dates,
)
from lendsafe.domain.lending.product import (
    FeeMode,
    LoanType,
    RateBasis,
    Term,
    TermUnit,
    installment_count,
)
from lendsafe.domain.money import Currency, Rounding, round_decimal, round_fraction

DECIMAL_PRECISION = 40


@dataclass(frozen=True)
class LoanTerms:
    """Everything needed to build a schedule, already validated against a product."""

    type: LoanType
    currency: Currency
    amount_minor: int  # the amount the borrower asked for
    annual_rate: Decimal
    start: date
    term: Term
    frequency: Frequency | None = None
    day_count: DayCount = DayCount.ACT_365F
    rounding: Rounding = Rounding.HALF_UP
    rate_basis: RateBasis = RateBasis.ANNUAL
    service_fee_minor: int = 0
    fee_mode: FeeMode = FeeMode.FINANCED
    periodic_fee_minor: int = 0
    calendar: BusinessCalendar = NO_CALENDAR
    rolling: Rolling = Rolling.NONE


@dataclass(frozen=True)
class ScheduledInstallment:
    """One instalment: the period it covers and what falls due at its end."""

    seq: int
    period_start: date
    due_date: date
    principal_minor: int
    interest_minor: int
    fee_minor: int

    @property
    def total_minor(self) -> int:
        """Principal + interest + fee due on the due date."""
        return self.principal_minor + self.interest_minor + self.fee_minor


@dataclass(frozen=True)
class Schedule:
    """A full repayment schedule and the amounts at disbursement."""

    principal_minor: int  # principal owed (amount + financed fee)
    disbursed_minor: int  # cash paid to the borrower (amount − deducted fee)
    upfront_fee_minor: int
    fee_mode: FeeMode
    installments: tuple[ScheduledInstallment, ...]

    @property
    def interest_minor(self) -> int:
        """Total interest over the schedule."""
        return sum(i.interest_minor for i in self.installments)

    @property
    def total_repayable_minor(self) -> int:
        """Everything the borrower pays back after disbursement."""
        return sum(i.total_minor for i in self.installments)

    @property
    def total_cost_minor(self) -> int:
        """Total cost of credit: what the borrower pays beyond the cash received."""
        return self.total_repayable_minor - self.disbursed_minor

    @property
    def maturity_date(self) -> date:
        """The last due date."""
        return self.installments[-1].due_date


def build_schedule(terms: LoanTerms) -> Schedule:
    """Build the schedule for ``terms`` (pure, deterministic)."""
    if terms.amount_minor <= 0:
        raise ValueError("the amount must be positive")
    principal, disbursed = _principal_and_cash(terms)
    periods = _periods(terms)
    if terms.type is LoanType.BULLET:
        rows = _bullet(terms, principal, periods[0])
    elif terms.type is LoanType.ANNUITY:
        rows = _annuity(terms, principal, periods)
    elif terms.type is LoanType.EQUAL_PRINCIPAL:
        rows = _equal_principal(terms, principal, periods)
    else:
        rows = _interest_only(terms, principal, periods)
    return Schedule(
        principal_minor=principal,
        disbursed_minor=disbursed,
        upfront_fee_minor=terms.service_fee_minor,
        fee_mode=terms.fee_mode,
        installments=tuple(rows),
    )


def _principal_and_cash(terms: LoanTerms) -> tuple[int, int]:
    fee = terms.service_fee_minor
    if terms.fee_mode is FeeMode.DEDUCTED:
        if fee >= terms.amount_minor:
            raise ValueError("a deducted fee must be smaller than the amount")
        return terms.amount_minor, terms.amount_minor - fee
    return terms.amount_minor + fee, terms.amount_minor


def _periods(terms: LoanTerms) -> list[tuple[date, date]]:
    if terms.type is LoanType.BULLET:
        if terms.term.unit is not TermUnit.DAYS:
            raise ValueError("a single-period loan's term is in days, e.g. 14d")
        due = terms.calendar.roll(terms.start + timedelta(days=terms.term.count), terms.rolling)
        return [(terms.start, due)]
    if terms.frequency is None:
        raise ValueError("an instalment loan needs a frequency")
    count = installment_count(terms.term, terms.frequency)
    dates = due_dates(terms.start, terms.frequency, count, terms.calendar, terms.rolling)
    starts = [terms.start, *dates[:-1]]
    return list(zip(starts, dates, strict=True))


def period_interest(
    balance_minor: int, terms: LoanTerms, start: date, end: date
) -> int:
    """Interest on ``balance_minor`` from ``start`` to ``end``, rounded by the product rule."""
    return round_fraction(balance_minor * period_rate(terms, start, end), terms.rounding)


def _bullet(
    terms: LoanTerms, principal: int, period: tuple[date, date]
) -> list[ScheduledInstallment]:
    start, due = period
    if terms.rate_basis is RateBasis.TERM:
        interest = round_fraction(Fraction(principal) * Fraction(terms.annual_rate), terms.rounding)
    else:
        interest = period_interest(principal, terms, start, due)
    return [ScheduledInstallment(1, start, due, principal, interest, terms.periodic_fee_minor)]


def annuity_payment(principal_minor: int, period_rates: list[Fraction], rounding: Rounding) -> int:
    """The level payment that repays ``principal_minor`` over periods with these rates.

    payment = P / Σₖ Πⱼ≤ₖ (1 + rⱼ)⁻¹, rounded once by ``rounding``. With equal rates r this
    is the textbook P·r / (1 − (1 + r)⁻ⁿ); with actual-day rates (ACT/365F) it follows the
    actual length of each period, as Apache Fineract's progressive schedules do.

    Computed in 40-digit Decimal; when the result lies within 10⁻²⁰ of a rounding
    boundary (an exact half-unit tie such as 7,320.5) it is recomputed exactly with
    fractions, so ties round by the rule and never by the last digit of a division.
    """
    with decimal.localcontext() as context:
        context.prec = DECIMAL_PRECISION
        discount = Decimal(1)
        annuity_factor = Decimal(0)
        for rate in period_rates:
            discount /= 1 + Decimal(rate.numerator) / Decimal(rate.denominator)
            annuity_factor += discount
        exact = Decimal(principal_minor) / annuity_factor
        fraction = exact - exact.to_integral_value(rounding=decimal.ROUND_FLOOR)
        near_boundary = min(fraction, abs(fraction - Decimal("0.5")), 1 - fraction)
    if near_boundary < Decimal("1e-20"):
        return round_fraction(_exact_annuity(principal_minor, period_rates), rounding)
    return round_decimal(exact, rounding)


def _exact_annuity(principal_minor: int, period_rates: list[Fraction]) -> Fraction:
    discount = Fraction(1)
    annuity_factor = Fraction(0)
    for rate in period_rates:
        discount /= 1 + rate
        annuity_factor += discount
    return principal_minor / annuity_factor


def period_rate(terms: LoanTerms, start: date, end: date) -> Fraction:
    """The exact interest rate of one period under the product's day count."""
    return _period_rate(terms.annual_rate, terms.day_count, start, end)


@lru_cache(maxsize=65_536)
def _period_rate(annual_rate: Decimal, day_count: DayCount, start: date, end: date) -> Fraction:
    return Fraction(annual_rate) * day_count.year_fraction(start, end)


def _annuity(
    terms: LoanTerms, principal: int, periods: list[tuple[date, date]]
) -> list[ScheduledInstallment]:
    rates = [period_rate(terms, start, due) for start, due in periods]
    payment = annuity_payment(principal, rates, terms.rounding)
    rows: list[ScheduledInstallment] = []
    balance = principal
    for seq, (start, due) in enumerate(periods, start=1):
        interest = period_interest(balance, terms, start, due)
        last = seq == len(periods)
        part = balance if last else min(balance, max(payment - interest, 0))
        rows.append(ScheduledInstallment(seq, start, due, part, interest, terms.periodic_fee_minor))
        balance -= part
    return rows


def _equal_principal(
    terms: LoanTerms, principal: int, periods: list[tuple[date, date]]
) -> list[ScheduledInstallment]:
    part = round_fraction(Fraction(principal, len(periods)), terms.rounding)
    rows: list[ScheduledInstallment] = []
    balance = principal
    for seq, (start, due) in enumerate(periods, start=1):
        interest = period_interest(balance, terms, start, due)
        paid = balance if seq == len(periods) else min(part, balance)
        rows.append(ScheduledInstallment(seq, start, due, paid, interest, terms.periodic_fee_minor))
        balance -= paid
    return rows


def _interest_only(
    terms: LoanTerms, principal: int, periods: list[tuple[date, date]]
) -> list[ScheduledInstallment]:
    rows: list[ScheduledInstallment] = []
    for seq, (start, due) in enumerate(periods, start=1):
        interest = period_interest(principal, terms, start, due)
        paid = principal if seq == len(periods) else 0
        rows.append(ScheduledInstallment(seq, start, due, paid, interest, terms.periodic_fee_minor))
    return rows
