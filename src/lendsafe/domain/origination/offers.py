"""Offers: one product at one amount and term, priced for the applicant's risk and checked.

:func:`evaluate_offer` runs every product-level rule on a real quote (the product's own limits
through ``terms_for_product``, the jurisdiction's legal rules through ``check_quote``, the
risk-based price against the cap, affordability and the expected-loss budget) and returns the
reasons it fails. :func:`limit_for` finds the highest amount on the policy's step grid that
passes, by estimating from the limiting ratios and re-running :func:`evaluate_offer` until an
amount passes — never by extrapolation alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from lendsafe.domain.lending.jurisdiction import Jurisdiction, check_quote
from lendsafe.domain.lending.product import LoanType, Product, Term, TermUnit
from lendsafe.domain.lending.quote import Quote, price, quote_facts, terms_for_product
from lendsafe.domain.money import Rounding, format_amount, format_rate, round_fraction
from lendsafe.domain.origination.application import Case, Market
from lendsafe.domain.origination.policy import Policy, Reason, Severity
from lendsafe.domain.problems import Refused

LIMIT_SEARCH_STEPS = 12
TERM_LADDER = {
    TermUnit.DAYS: (7, 14, 21, 30),
    TermUnit.WEEKS: (4, 8, 13, 26, 39, 52),
    TermUnit.MONTHS: (3, 6, 9, 12, 18, 24, 36),
}
Pricer = Callable[..., Quote]


@dataclass(frozen=True)
class Offer:
    """A product evaluated at one amount and term: the quote (if any) and what fails."""

    product: str
    amount_minor: int
    term: Term
    reasons: tuple[Reason, ...]
    quote: Quote | None
    annual_rate: Decimal

    @property
    def available(self) -> bool:
        """True when no rule fails."""
        return not self.reasons

    @property
    def only_limits(self) -> bool:
        """True when every failing rule is an amount limit."""
        return bool(self.reasons) and all(r.severity is Severity.LIMIT for r in self.reasons)


def percent(value: Fraction | Decimal, places: int = 1) -> str:
    """A ratio as a percentage (``0.4`` → ``40.0%``)."""
    if isinstance(value, Fraction):
        value = Decimal(value.numerator) / Decimal(value.denominator)
    return f"{format_rate(value * 100, places)}%"


def risk_rate(policy: Policy, product: Product, pd: Decimal) -> Decimal:
    """The product's contract rate plus the add-on of the applicant's PD band."""
    band = next(b for b in policy.pricing if pd <= b.pd_max or b is policy.pricing[-1])
    return product.annual_rate + band.add


def monthly_payment(quote: Quote) -> Fraction:
    """The largest instalment, as a monthly amount (a single payment counts whole)."""
    largest = max(i.total_minor for i in quote.schedule.installments)
    frequency = quote.terms.frequency
    if quote.terms.type is LoanType.BULLET or frequency is None:
        return Fraction(largest)
    return Fraction(largest * frequency.periods_per_year, 12)


def region_code(region: str) -> str:
    """Country part of a region (``CN-31`` → ``CN``)."""
    return region.split("-", 1)[0].strip().upper()


def product_gate(policy: Policy, market: Market, case: Case, product: Product) -> list[Reason]:
    """Rules about the product for this borrower that no amount or term changes."""
    rules = market.jurisdictions[product.jurisdiction]
    reasons: list[Reason] = []
    country = region_code(case.applicant.region)
    if product.jurisdiction != "NONE" and country != product.jurisdiction:
        reasons.append(policy.reason("product.region", product=product.id,
                                     jurisdiction=product.jurisdiction,
                                     region=case.applicant.region))
    bullets = case.facts.open_bullet_loan_ids
    if product.type is LoanType.BULLET and bullets and not rules.single_period_rollover_allowed:
        reasons.append(policy.reason("bullet.no_rollover", open_loan=bullets[0],
                                     jurisdiction=rules.code))
    return reasons


def evaluate_offer(policy: Policy, market: Market, case: Case, product: Product,
                   amount_minor: int, term: Term, pricer: Pricer = price) -> Offer:
    """Every product-level rule at ``amount_minor`` over ``term`` (see the module docstring)."""
    reasons = product_gate(policy, market, case, product)
    rate = risk_rate(policy, product, case.pd)
    try:
        terms = terms_for_product(product, amount_minor, term, market.on,
                                  market.calendars[product.id], rate)
    except Refused:
        reasons.append(_product_limits(policy, product, amount_minor, term))
        return Offer(product.id, amount_minor, term, tuple(reasons), None, rate)
    quote = pricer(terms)
    jurisdiction = market.jurisdictions[product.jurisdiction]
    reasons.extend(_legal(policy, jurisdiction, quote))
    reasons.extend(_limits(policy, case, product, quote))
    return Offer(product.id, amount_minor, term, tuple(reasons), quote, rate)


def _product_limits(policy: Policy, product: Product, amount_minor: int, term: Term) -> Reason:
    cur = product.currency
    return policy.reason(
        "product.limits", product=product.id,
        amount_min=format_amount(product.amount_min_minor, cur),
        amount_max=format_amount(product.amount_max_minor, cur),
        term_min=product.term_min, term_max=product.term_max,
        amount=format_amount(amount_minor, cur), term=term)


def _legal(policy: Policy, rules: Jurisdiction, quote: Quote) -> list[Reason]:
    reasons = []
    for problem in check_quote(rules, quote_facts(quote)):
        if problem.code.endswith(".annual_cost_cap"):
            reasons.append(policy.reason(
                "pricing.above_cap", rate=percent(Decimal(problem.figures["annual_rate"]), 2),
                cap=percent(Decimal(problem.figures["cap"]), 2), rule=problem.code))
        else:
            reasons.append(policy.reason("legal.limits", jurisdiction=rules.code,
                                         rule=problem.code, detail=problem.message))
    return reasons


@dataclass(frozen=True)
class Capacity:
    """How far one amount limit lets the amount scale (``>= 1`` passes) and its reason."""

    scale: Fraction
    explain: Callable[[], Reason]


def capacities(policy: Policy, case: Case, product: Product, quote: Quote) -> list[Capacity]:
    """Payment-to-income, debt service and expected loss at this quote."""
    income = case.applicant.monthly_income_minor
    obligations = case.applicant.monthly_obligations_minor
    payment = monthly_payment(quote)
    pti_max = policy.ratio("affordability.payment_to_income")
    dsr_max = policy.ratio("affordability.debt_service")
    return [
        Capacity(_scale(pti_max * income, payment),
                 lambda: _affordability(policy, case, product, payment, pti_max, False)),
        Capacity(_scale(dsr_max * income - obligations, payment),
                 lambda: _affordability(policy, case, product, payment, dsr_max, True)),
        _loss_capacity(policy, case, product, quote),
    ]


def _affordability(policy: Policy, case: Case, product: Product, payment: Fraction,
                   most: Fraction, with_obligations: bool) -> Reason:
    cur = product.currency
    income = case.applicant.monthly_income_minor
    obligations = case.applicant.monthly_obligations_minor
    total = payment + obligations if with_obligations else payment
    ratio = percent(Fraction(total) / income) if income > 0 else "∞"
    figures = {
        "payment": format_amount(round_fraction(payment, Rounding.HALF_UP), cur),
        "obligations": format_amount(obligations, cur),
        "income": format_amount(income, cur), "ratio": ratio, "max": percent(most),
    }
    code = "affordability.debt_service" if with_obligations else \
        "affordability.payment_to_income"
    return policy.reason(code, None, **figures)


def _loss_capacity(policy: Policy, case: Case, product: Product, quote: Quote) -> Capacity:
    cur = product.currency
    budget = policy.amount_minor(policy.budget[cur.code], cur)
    lgd = policy.lgd.get(product.type.value, policy.lgd.get("default", Decimal(1)))
    loss = Fraction(case.pd) * Fraction(lgd) * quote.schedule.principal_minor
    scale = _scale(Fraction(budget), loss)

    def explain() -> Reason:
        limit = round_fraction(Fraction(quote.terms.amount_minor) * min(scale, Fraction(1)),
                               Rounding.DOWN)
        return policy.reason(
            "expected_loss.budget", budget=format_amount(budget, cur),
            expected_loss=format_amount(round_fraction(loss, Rounding.UP), cur),
            limit=format_amount(limit, cur))

    return Capacity(scale, explain)


def _scale(allowed: Fraction, used: Fraction) -> Fraction:
    if used <= 0:
        return Fraction(10**9)
    return max(Fraction(0), Fraction(allowed) / used)


def _limits(policy: Policy, case: Case, product: Product, quote: Quote) -> list[Reason]:
    return [c.explain() for c in capacities(policy, case, product, quote) if c.scale < 1]


def step_minor(policy: Policy, product: Product) -> int:
    """The grid limits are rounded down to."""
    return policy.amount_minor(str(policy.decision["amount_step"]), product.currency)


def limit_for(policy: Policy, market: Market, case: Case, product: Product, term: Term,
              pricer: Pricer = price) -> tuple[int, Offer | None]:
    """The highest passing amount on the step grid (0 when none) and the offer there."""
    step = step_minor(policy, product)
    ceiling = min(product.amount_max_minor,
                  market.jurisdictions[product.jurisdiction].amount_max_minor)
    amount = ceiling - ceiling % step
    for _ in range(LIMIT_SEARCH_STEPS):
        if amount < product.amount_min_minor:
            return 0, None
        offer = evaluate_offer(policy, market, case, product, amount, term, pricer)
        if offer.available:
            return amount, offer
        if not offer.only_limits or offer.quote is None:
            return 0, None
        scale = min(c.scale for c in capacities(policy, case, product, offer.quote))
        estimate = round_fraction(amount * scale, Rounding.DOWN)
        estimate -= estimate % step
        amount = min(estimate, amount - step)
    return 0, None


def nearest_term(product: Product, term: Term) -> Term:
    """The product's term closest to ``term`` (itself when the product offers it)."""
    unit = product.term_min.unit
    low, high = product.term_min.count, product.term_max.count
    if term.unit is unit:
        return Term(min(max(term.count, low), high), unit)
    days = term.approximate_days()
    per = {TermUnit.DAYS: 1, TermUnit.WEEKS: 7, TermUnit.MONTHS: 30}[unit]
    return Term(min(max(-(-days // per), low), high), unit)


def longer_terms(product: Product, term: Term) -> list[Term]:
    """Ladder terms of the product longer than ``term``, shortest first."""
    unit = product.term_min.unit
    start = nearest_term(product, term)
    counts = [c for c in TERM_LADDER[unit]
              if start.count < c <= product.term_max.count and c >= product.term_min.count]
    if product.term_max.count not in counts and product.term_max.count > start.count:
        counts.append(product.term_max.count)
    return [Term(c, unit) for c in counts]
