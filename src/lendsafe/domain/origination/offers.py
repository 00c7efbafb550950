"""Offers: one product at one amount and term, priced for the applicant's risk and checked.

An :class:`Evaluator` (one per case) runs every product-level rule on a priced offer (the
product's own limits through ``terms_for_product``, the jurisdiction's legal rules through
``check_quote``, the risk-based price against the cap, affordability and the expected-loss
budget) and returns the reasons it fails; what depends only on the applicant (the
affordability allowances, the PD band's rate, the product gates) is worked out once per case,
and what depends only on the loan terms comes from :class:`~lendsafe.domain.origination.pricing
.Pricing`, shared across applicants. :meth:`Evaluator.limit` finds the highest amount on the
policy's step grid that passes, by estimating from the limiting ratios and re-evaluating until
an amount passes — never by extrapolation alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from functools import cached_property

from lendsafe.domain.lending.jurisdiction import Jurisdiction
from lendsafe.domain.lending.product import LoanType, Product, Term, TermUnit
from lendsafe.domain.lending.quote import Quote
from lendsafe.domain.money import Rounding, format_amount, format_rate, round_fraction
from lendsafe.domain.origination.application import Case, Market
from lendsafe.domain.origination.policy import Policy, Reason, Severity
from lendsafe.domain.origination.pricing import Priced, Pricing, payment_monthly
from lendsafe.domain.problems import Problem

LIMIT_SEARCH_STEPS = 12
TERM_LADDER = {
    TermUnit.DAYS: (7, 14, 21, 30),
    TermUnit.WEEKS: (4, 8, 13, 26, 39, 52),
    TermUnit.MONTHS: (3, 6, 9, 12, 18, 24, 36),
}
_UNLIMITED = Fraction(10**9)
PTI, DSR, LOSS = "affordability.payment_to_income", "affordability.debt_service", \
    "expected_loss.budget"


@dataclass(frozen=True)
class Offer:
    """A product evaluated at one amount and term: its priced facts (if any) and what fails.

    ``severities`` has one entry per failing rule, in order; the borrower-facing ``reasons``
    (texts with the figures filled in) are written on first use, as most offers a decision
    evaluates — limit searches, alternatives tried — are only asked whether they pass."""

    product: str
    amount_minor: int
    term: Term
    severities: tuple[Severity, ...]
    priced: Priced | None
    annual_rate: Decimal
    pricing: Pricing | None = field(default=None, compare=False, repr=False)
    explain: Callable[[], tuple[Reason, ...]] = field(default=tuple, compare=False, repr=False)

    @cached_property
    def reasons(self) -> tuple[Reason, ...]:
        """Why the offer fails (empty when it passes), in the order of ``severities``."""
        return self.explain()

    @property
    def available(self) -> bool:
        """True when no rule fails."""
        return not self.severities

    @property
    def only_limits(self) -> bool:
        """True when every failing rule is an amount limit."""
        return bool(self.severities) and all(s is Severity.LIMIT for s in self.severities)

    @property
    def quote(self) -> Quote | None:
        """The full quote (schedule and disclosed rates), priced on first use."""
        if self.priced is None or self.pricing is None:
            return None
        return self.pricing.quote(self.priced)

    @property
    def annual_rate_disclosed(self) -> Decimal | None:
        """The quote's disclosed annual rate (IRR method), computed on first use."""
        if self.priced is None or self.pricing is None:
            return None
        return self.pricing.disclosed(self.priced)


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
    return payment_monthly(quote.terms, quote.schedule)


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


@dataclass(frozen=True)
class Capacity:
    """How far one amount limit lets the amount scale (``>= 1`` passes) and its reason."""

    scale: Fraction
    explain: Callable[[], Reason]


class Evaluator:
    """Offers for one case (see the module docstring)."""

    def __init__(self, policy: Policy, market: Market, case: Case,
                 pricing: Pricing | None = None) -> None:
        self.policy, self.market, self.case = policy, market, case
        self.pricing = pricing if pricing is not None else Pricing()
        income = case.applicant.monthly_income_minor
        self.pti_max = policy.ratio("affordability.payment_to_income")
        self.dsr_max = policy.ratio("affordability.debt_service")
        self.pti_allowed = self.pti_max * income
        self.dsr_allowed = self.dsr_max * income - case.applicant.monthly_obligations_minor
        self.pd = Fraction(case.pd)
        self.rates: dict[str, Decimal] = {}
        self.gates: dict[str, tuple[Reason, ...]] = {}
        self.losses: dict[str, tuple[int, Fraction]] = {}

    def offer(self, product: Product, amount_minor: int, term: Term) -> Offer:
        """Every product-level rule at ``amount_minor`` over ``term``."""
        gate = self._gate(product)
        rate = self._rate(product)
        rules = self.market.jurisdictions[product.jurisdiction]
        priced = self.pricing.priced(product, amount_minor, term, self.market.on,
                                     self.market.calendars[product.id], rate, rules)
        if priced is None:
            reasons = (*gate, _product_limits(self.policy, product, amount_minor, term))
            return Offer(product.id, amount_minor, term, tuple(r.severity for r in reasons),
                         None, rate, self.pricing, lambda: reasons)
        legal = tuple(_legal(self.policy, rules, priced.legal)) if priced.legal else ()
        failing = self._failing(product, priced)
        severities = tuple(r.severity for r in (*gate, *legal)) + tuple(
            self.policy.rule(code).severity for code in failing)

        def explain() -> tuple[Reason, ...]:
            return (*gate, *legal, *(self._limit_reason(code, product, priced)
                                     for code in failing))

        return Offer(product.id, amount_minor, term, severities, priced, rate, self.pricing,
                     explain)

    def capacities(self, product: Product, priced: Priced) -> list[Capacity]:
        """Payment-to-income, debt service and expected loss at these priced terms."""
        payment = priced.payment_monthly
        budget, loss = self._loss(product, priced)
        return [
            Capacity(_scale(self.pti_allowed, payment),
                     lambda: self._affordability(product, payment, False)),
            Capacity(_scale(self.dsr_allowed, payment),
                     lambda: self._affordability(product, payment, True)),
            Capacity(_scale(Fraction(budget), loss),
                     lambda: self._loss_reason(product, priced, budget, loss)),
        ]

    def limit(self, product: Product, term: Term) -> tuple[int, Offer | None]:
        """The highest passing amount on the step grid (0 when none) and the offer there."""
        step = step_minor(self.policy, product)
        ceiling = min(product.amount_max_minor,
                      self.market.jurisdictions[product.jurisdiction].amount_max_minor)
        amount = ceiling - ceiling % step
        for _ in range(LIMIT_SEARCH_STEPS):
            if amount < product.amount_min_minor:
                return 0, None
            offer = self.offer(product, amount, term)
            if offer.available:
                return amount, offer
            if not offer.only_limits or offer.priced is None:
                return 0, None
            scale = min(c.scale for c in self.capacities(product, offer.priced))
            estimate = round_fraction(amount * scale, Rounding.DOWN)
            estimate -= estimate % step
            amount = min(estimate, amount - step)
        return 0, None

    def _gate(self, product: Product) -> tuple[Reason, ...]:
        if product.id not in self.gates:
            self.gates[product.id] = tuple(product_gate(self.policy, self.market, self.case,
                                                        product))
        return self.gates[product.id]

    def _rate(self, product: Product) -> Decimal:
        if product.id not in self.rates:
            self.rates[product.id] = risk_rate(self.policy, product, self.case.pd)
        return self.rates[product.id]

    def _share(self, product: Product) -> tuple[int, Fraction]:
        """The loss budget and PD × LGD of ``product`` for this applicant."""
        if product.id not in self.losses:
            cur = product.currency
            budget = self.policy.amount_minor(self.policy.budget[cur.code], cur)
            lgd = self.policy.lgd.get(product.type.value,
                                      self.policy.lgd.get("default", Decimal(1)))
            self.losses[product.id] = budget, self.pd * Fraction(lgd)
        return self.losses[product.id]

    def _loss(self, product: Product, priced: Priced) -> tuple[int, Fraction]:
        budget, share = self._share(product)
        return budget, share * priced.principal_minor

    def _failing(self, product: Product, priced: Priced) -> tuple[str, ...]:
        """The amount limits that fail (scale < 1), in order, without computing the scales:
        ``allowed < used`` compared exactly as cross-multiplied integers."""
        payment, per = priced.payment_monthly.as_integer_ratio()
        failing: tuple[str, ...] = ()
        if payment > 0:
            if self.pti_allowed.numerator * per < payment * self.pti_allowed.denominator:
                failing += (PTI,)
            if self.dsr_allowed.numerator * per < payment * self.dsr_allowed.denominator:
                failing += (DSR,)
        budget, share = self._share(product)
        loss, loss_per = share.numerator * priced.principal_minor, share.denominator
        if loss > 0 and budget * loss_per < loss:
            failing += (LOSS,)
        return failing

    def _limit_reason(self, code: str, product: Product, priced: Priced) -> Reason:
        if code == LOSS:
            return self._loss_reason(product, priced, *self._loss(product, priced))
        return self._affordability(product, priced.payment_monthly, code == DSR)

    def _affordability(self, product: Product, payment: Fraction,
                       with_obligations: bool) -> Reason:
        cur = product.currency
        income = self.case.applicant.monthly_income_minor
        obligations = self.case.applicant.monthly_obligations_minor
        total = payment + obligations if with_obligations else payment
        ratio = percent(Fraction(total) / income) if income > 0 else "∞"
        most = self.dsr_max if with_obligations else self.pti_max
        figures = {
            "payment": format_amount(round_fraction(payment, Rounding.HALF_UP), cur),
            "obligations": format_amount(obligations, cur),
            "income": format_amount(income, cur), "ratio": ratio, "max": percent(most),
        }
        return self.policy.reason(DSR if with_obligations else PTI, None, **figures)

    def _loss_reason(self, product: Product, priced: Priced, budget: int,
                     loss: Fraction) -> Reason:
        cur = product.currency
        scale = _scale(Fraction(budget), loss)
        limit = round_fraction(Fraction(priced.amount_minor) * min(scale, Fraction(1)),
                               Rounding.DOWN)
        return self.policy.reason(
            LOSS, budget=format_amount(budget, cur),
            expected_loss=format_amount(round_fraction(loss, Rounding.UP), cur),
            limit=format_amount(limit, cur))


def evaluate_offer(policy: Policy, market: Market, case: Case, product: Product,
                   amount_minor: int, term: Term, pricing: Pricing | None = None) -> Offer:
    """Every product-level rule at ``amount_minor`` over ``term`` (see the module docstring)."""
    return Evaluator(policy, market, case, pricing).offer(product, amount_minor, term)


def limit_for(policy: Policy, market: Market, case: Case, product: Product, term: Term,
              pricing: Pricing | None = None) -> tuple[int, Offer | None]:
    """The highest passing amount on the step grid (0 when none) and the offer there."""
    return Evaluator(policy, market, case, pricing).limit(product, term)


def prime(policy: Policy, market: Market, pricing: Pricing) -> int:
    """Price what every limit search starts with: each product at its ceiling on the amount
    grid, over every term it lends, at every price band's rate. Returns the offers priced.

    These facts are the same for every applicant on ``market.on`` (the limit search's first
    amount does not depend on the applicant), so a server can price them once at start-up
    instead of in its first requests."""
    priced = 0
    for product in market.products.values():
        rules = market.jurisdictions[product.jurisdiction]
        step = step_minor(policy, product)
        ceiling = min(product.amount_max_minor, rules.amount_max_minor)
        rates = sorted({product.annual_rate + band.add for band in policy.pricing})
        unit, calendar = product.term_min.unit, market.calendars[product.id]
        for count in range(product.term_min.count, product.term_max.count + 1):
            for rate in rates:
                pricing.priced(product, ceiling - ceiling % step, Term(count, unit), market.on,
                               calendar, rate, rules)
                priced += 1
    return priced


def _product_limits(policy: Policy, product: Product, amount_minor: int, term: Term) -> Reason:
    cur = product.currency
    return policy.reason(
        "product.limits", product=product.id,
        amount_min=format_amount(product.amount_min_minor, cur),
        amount_max=format_amount(product.amount_max_minor, cur),
        term_min=product.term_min, term_max=product.term_max,
        amount=format_amount(amount_minor, cur), term=term)


def _legal(policy: Policy, rules: Jurisdiction, problems: tuple[Problem, ...]) -> list[Reason]:
    reasons = []
    for problem in problems:
        if problem.code.endswith(".annual_cost_cap"):
            reasons.append(policy.reason(
                "pricing.above_cap", rate=percent(Decimal(problem.figures["annual_rate"]), 2),
                cap=percent(Decimal(problem.figures["cap"]), 2), rule=problem.code))
        else:
            reasons.append(policy.reason("legal.limits", jurisdiction=rules.code,
                                         rule=problem.code, detail=problem.message))
    return reasons


def _scale(allowed: Fraction, used: Fraction) -> Fraction:
    if used <= 0:
        return _UNLIMITED
    return max(Fraction(0), Fraction(allowed) / used)


def step_minor(policy: Policy, product: Product) -> int:
    """The grid limits are rounded down to."""
    return policy.amount_minor(str(policy.decision["amount_step"]), product.currency)


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
