"""Quotes: the schedule and the disclosed annualised rate before a loan is booked.

The disclosed rate is computed by the actuarial (IRR) method on the actual cash flows,
every fee included: the borrower receives the cash actually paid out on the start date
and pays each instalment's total on its due date. Two forms are reported and labelled:
``annual_rate_disclosed`` = periodic IRR × unit periods per year (the simple, 单利 form that
Chinese apps show, and the US APR), and ``annual_rate_compound`` = (1 + IRR)^k − 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from lendsafe.domain.calendar import BusinessCalendar, Frequency
from lendsafe.domain.lending.apr import AprResult, CashFlow, Method, UnitPeriod, annual_rate
from lendsafe.domain.lending.jurisdiction import Jurisdiction, QuoteFacts, check_quote
from lendsafe.domain.lending.product import (
    LoanType,
    Product,
    Term,
    TermUnit,
)
from lendsafe.domain.lending.schedule import LoanTerms, Schedule, build_schedule
from lendsafe.domain.money import format_amount
from lendsafe.domain.problems import Problem, Refused

UNIT_FOR_FREQUENCY = {
    Frequency.MONTHLY: UnitPeriod.MONTH,
    Frequency.BIWEEKLY: UnitPeriod.TWO_WEEKS,
    Frequency.WEEKLY: UnitPeriod.WEEK,
}


@dataclass(frozen=True)
class Quote:
    """A priced, checked offer: schedule, disclosed rates and totals."""

    terms: LoanTerms
    schedule: Schedule
    apr: AprResult

    @property
    def annual_rate_disclosed(self) -> Decimal:
        """Periodic IRR × periods per year (单利 form)."""
        return self.apr.annual_rate_nominal

    @property
    def annual_rate_compound(self) -> Decimal:
        """(1 + periodic IRR)^periods per year − 1."""
        return self.apr.annual_rate_compound


def cash_flows(terms: LoanTerms, schedule: Schedule) -> list[CashFlow]:
    """The borrower's actual cash flows: cash received, then each instalment paid."""
    flows = [CashFlow(terms.start, -schedule.disbursed_minor)]
    flows.extend(CashFlow(i.due_date, i.total_minor) for i in schedule.installments)
    return flows


def price(terms: LoanTerms) -> Quote:
    """Build the schedule and the disclosed rates for ``terms``."""
    schedule = build_schedule(terms)
    unit = None if terms.frequency is None else UNIT_FOR_FREQUENCY[terms.frequency]
    result = annual_rate(cash_flows(terms, schedule), Method.REG_Z, unit)
    return Quote(terms, schedule, result)


def quote_facts(quote: Quote) -> QuoteFacts:
    """What the jurisdiction rules look at."""
    terms = quote.terms
    return QuoteFacts(
        type=terms.type,
        amount_minor=terms.amount_minor,
        currency=terms.currency,
        term_days=(quote.schedule.maturity_date - terms.start).days,
        fee_mode=terms.fee_mode,
        upfront_fee_minor=quote.schedule.upfront_fee_minor,
        annual_rate_disclosed=quote.annual_rate_disclosed,
        annual_rate_compound=quote.annual_rate_compound,
    )


def checked_quote(terms: LoanTerms, rules: Jurisdiction) -> Quote:
    """Price ``terms`` and refuse it with named problems if it breaks a rule."""
    quote = price(terms)
    problems = check_quote(rules, quote_facts(quote))
    if problems:
        raise Refused(problems)
    return quote


def terms_for_product(
    product: Product,
    amount_minor: int,
    term: Term,
    start: date,
    calendar: BusinessCalendar,
    annual_rate_override: Decimal | None = None,
) -> LoanTerms:
    """Loan terms for a request against a product, refusing what the product does not offer."""
    problems = _product_limits(product, amount_minor, term)
    if problems:
        raise Refused(problems)
    return LoanTerms(
        type=product.type,
        currency=product.currency,
        amount_minor=amount_minor,
        annual_rate=product.annual_rate if annual_rate_override is None else annual_rate_override,
        start=start,
        term=term,
        frequency=product.frequency,
        day_count=product.day_count,
        rounding=product.rounding,
        rate_basis=product.rate_basis,
        service_fee_minor=product.service_fee_for(amount_minor),
        fee_mode=product.fee_mode,
        periodic_fee_minor=product.periodic_fee_minor,
        calendar=calendar,
        rolling=product.rolling,
    )


def _product_limits(product: Product, amount_minor: int, term: Term) -> list[Problem]:
    cur = product.currency
    problems: list[Problem] = []
    if amount_minor <= 0:
        problems.append(Problem("amount.positive", "the amount must be positive, e.g. 1000.00",
                                field="amount"))
    elif not product.amount_min_minor <= amount_minor <= product.amount_max_minor:
        low, high = (format_amount(v, cur) for v in (product.amount_min_minor,
                                                      product.amount_max_minor))
        problems.append(Problem(
            "product.amount_range",
            f"product {product.id!r} lends {low} to {high}; "
            f"{format_amount(amount_minor, cur)} is outside",
            field="amount", figures={"min": low, "max": high},
        ))
    same_unit = term.unit is product.term_min.unit or (
        product.type is not LoanType.BULLET and term.unit is not TermUnit.DAYS
    )
    days = term.approximate_days()
    if not same_unit or not (
        product.term_min.approximate_days() <= days <= product.term_max.approximate_days()
    ):
        problems.append(Problem(
            "product.term_range",
            f"product {product.id!r} offers terms from {product.term_min} to "
            f"{product.term_max}; {term} is outside",
            field="term", figures={"min": str(product.term_min), "max": str(product.term_max)},
        ))
    return problems
