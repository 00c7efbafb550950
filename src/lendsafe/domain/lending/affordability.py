"""Personalised plans at origination: which terms of which products a borrower can afford.

Rule (data, ``data/affordability.toml``): a plan fits when its largest instalment as a
monthly equivalent — instalment × periods a year ÷ 12, rounded UP; a single-period loan's
whole repayment counts in one month — is at most ``payment_to_income_max`` of the monthly
income, and obligations + that payment are at most ``debt_service_max`` of it.

Ranking for the borrower: lowest total cost of credit first (what the plan costs beyond
the cash received, every fee included); ties by the lower largest instalment, then the
shorter term. Affordability already keeps every offered payment within the limits, so the
cheapest plan that fits is the one in the borrower's interest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from lendsafe.domain.lending.product import LoanType, Product, Term, TermUnit
from lendsafe.domain.lending.quote import Quote
from lendsafe.domain.money import Currency, Rounding, divide, parse_amount
from lendsafe.domain.problems import Problem

RANKING_RULE = ("lowest total cost of credit first; ties: lower largest instalment, then "
                "shorter term")


@dataclass(frozen=True)
class AffordabilityRule:
    """Payment-to-income and debt-service limits, and the terms tried."""

    payment_to_income_max: Decimal
    debt_service_max: Decimal
    income_min_minor: int
    months: tuple[int, ...] = (3, 6, 12, 24)
    weeks: tuple[int, ...] = (4, 8, 12, 26)
    days: tuple[int, ...] = (7, 14, 30)
    source: str = ""


def load_rule(mapping: Mapping[str, Any], currency: Currency) -> AffordabilityRule:
    """The rule from parsed TOML."""
    terms = mapping.get("terms", {})
    return AffordabilityRule(
        Decimal(str(mapping["payment_to_income_max"])), Decimal(str(mapping["debt_service_max"])),
        parse_amount(str(mapping.get("income_min", "0")), currency),
        tuple(int(m) for m in terms.get("months", (3, 6, 12, 24))),
        tuple(int(w) for w in terms.get("weeks", (4, 8, 12, 26))),
        tuple(int(d) for d in terms.get("days", (7, 14, 30))), str(mapping.get("source", "")))


@dataclass(frozen=True)
class Plan:
    """An affordable offer: the product, term, checked quote and monthly burden."""

    product_id: str
    term: Term
    quote: Quote
    installment_max_minor: int
    monthly_payment_minor: int

    def rank_key(self) -> tuple[int, int, int]:
        """Sort key of :data:`RANKING_RULE`."""
        return (self.quote.schedule.total_cost_minor, self.installment_max_minor,
                self.term.approximate_days())


def term_alternatives(product: Product, rule: AffordabilityRule) -> list[Term]:
    """The rule's terms that lie within the product's range, in the product's unit."""
    if product.type is LoanType.BULLET:
        candidates = [Term(d, TermUnit.DAYS) for d in rule.days]
    elif product.term_min.unit is TermUnit.WEEKS:
        candidates = [Term(w, TermUnit.WEEKS) for w in rule.weeks]
    else:
        candidates = [Term(m, TermUnit.MONTHS) for m in rule.months]
    low, high = product.term_min.approximate_days(), product.term_max.approximate_days()
    return [t for t in candidates if low <= t.approximate_days() <= high]


def monthly_payment(quote: Quote) -> tuple[int, int]:
    """(largest instalment, its monthly equivalent rounded UP)."""
    largest = max(i.total_minor for i in quote.schedule.installments)
    frequency = quote.terms.frequency
    if frequency is None:
        return largest, largest
    return largest, divide(largest * frequency.periods_per_year, 12, Rounding.UP)


def affordability_problems(rule: AffordabilityRule, income_minor: int, obligations_minor: int,
                           monthly_minor: int) -> list[Problem]:
    """Why a monthly payment does not fit (empty when it does)."""
    problems = []
    if Decimal(monthly_minor) > rule.payment_to_income_max * income_minor:
        problems.append(Problem("affordability.payment_to_income",
                                f"the payment may be at most {rule.payment_to_income_max} of "
                                "the monthly income", field="income"))
    if Decimal(obligations_minor + monthly_minor) > rule.debt_service_max * income_minor:
        problems.append(Problem("affordability.debt_service",
                                f"obligations plus the payment may be at most "
                                f"{rule.debt_service_max} of the monthly income",
                                field="obligations"))
    return problems


def rank(plans: list[Plan]) -> list[Plan]:
    """Plans in the order of :data:`RANKING_RULE`."""
    return sorted(plans, key=Plan.rank_key)
