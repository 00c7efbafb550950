"""The credit decision: applicant rules, the requested offer, product availability.

``decide`` is pure: it takes the policy, the market (products, jurisdictions, calendars and
the business date), the case (applicant, request, the lender's facts, the model's PD and
reasons) and returns a :class:`Decision`. Every product is reported as available (with its
limit and price) or unavailable with its reasons and the nearest alternative that passes,
found by re-running the rules and the quote (see :mod:`lendsafe.domain.origination.offers`):

1. a later date, when every blocking reason ends on a known date (cooling-off);
2. a smaller amount of the same product, when only amount limits fail and the limit is at
   least ``alternative_amount_share_min`` of the amount asked;
3. a longer term of the same product (instalment products);
4. another product of the same jurisdiction at the same amount (instalment products first
   for a single-period request), at its nearest and then longer terms;
5. a smaller amount of the same product, whatever its share.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

from lendsafe.domain.lending.product import LoanType, Product, Term
from lendsafe.domain.money import format_amount
from lendsafe.domain.origination.application import Case, Market
from lendsafe.domain.origination.offers import (
    Evaluator,
    Offer,
    longer_terms,
    nearest_term,
    percent,
)
from lendsafe.domain.origination.policy import Policy, Reason, Severity
from lendsafe.domain.origination.pricing import Pricing

DECLINE, REFER, APPROVE = "decline", "refer", "approve"


@dataclass(frozen=True)
class Alternative:
    """An offer that passes where the asked one does not."""

    kind: str  # "date" | "amount" | "term" | "product"
    offer: Offer
    available_from: date | None = None


@dataclass(frozen=True)
class Availability:
    """One product for this applicant: available with a limit, or why not and what instead."""

    product: str
    available: bool
    limit_minor: int
    offer: Offer
    reasons: tuple[Reason, ...]
    alternative: Alternative | None


@dataclass(frozen=True)
class Decision:
    """The answer to an application."""

    decision: str
    reasons: tuple[Reason, ...]
    limit_minor: int
    offer: Offer
    alternative: Alternative | None
    products: tuple[Availability, ...]


def applicant_reasons(policy: Policy, market: Market, case: Case) -> list[Reason]:
    """Rules about the applicant that hold for every product."""
    reasons = _identity_reasons(policy, case) + _history_reasons(policy, market, case)
    reasons.extend(_score_reasons(policy, case))
    return reasons


def _identity_reasons(policy: Policy, case: Case) -> list[Reason]:
    person = case.applicant
    cur = case.request.currency
    reasons: list[Reason] = []
    if person.age < int(policy.param("age.min", "min")):
        reasons.append(policy.reason("age.min", age=person.age, min=policy.param("age.min", "min")))
    if person.age > int(policy.param("age.max", "max")):
        reasons.append(policy.reason("age.max", age=person.age, max=policy.param("age.max", "max")))
    income_min = policy.amount_minor(policy.param("income.minimum", "min")[cur.code], cur)
    if person.monthly_income_minor < income_min:
        reasons.append(policy.reason(
            "income.minimum", income=format_amount(person.monthly_income_minor, cur),
            min=format_amount(income_min, cur)))
    if person.employment in policy.param("employment.refer", "employment"):
        reasons.append(policy.reason("employment.refer", employment=person.employment))
    reasons.extend(policy.reason("blocklist.match", kind=kind) for kind in case.facts.blocklisted)
    if person.device_flags:
        reasons.append(policy.reason("fraud.device", signal=", ".join(person.device_flags)))
    recent_max = int(policy.param("consortium.recent_applications", "max"))
    if person.applications_30d is not None and person.applications_30d > recent_max:
        reasons.append(policy.reason("consortium.recent_applications",
                                     count=person.applications_30d, max=recent_max))
    return reasons


def _history_reasons(policy: Policy, market: Market, case: Case) -> list[Reason]:
    facts = case.facts
    reasons: list[Reason] = []
    if facts.last_charged_off_on is not None:
        until = facts.last_charged_off_on + timedelta(
            days=int(policy.param("default.cooling_off", "days")))
        if market.on < until:
            reasons.append(policy.reason(
                "default.cooling_off", available_from=until,
                charged_off_on=facts.last_charged_off_on.isoformat(), days=(
                    until - facts.last_charged_off_on).days))
    most = int(policy.param("loans.max_concurrent", "max"))
    if len(facts.open_loan_ids) >= most:
        reasons.append(policy.reason("loans.max_concurrent", open=len(facts.open_loan_ids),
                                     max=most))
    return reasons


def _score_reasons(policy: Policy, case: Case) -> list[Reason]:
    shown = percent(case.pd)
    if case.pd > policy.rate("decline_pd"):
        return [policy.reason("score.decline", pd=shown)]
    if case.pd > policy.rate("refer_pd"):
        return [policy.reason("score.refer", pd=shown)]
    return []


def model_reasons(policy: Policy, case: Case) -> list[Reason]:
    """The model's adverse reasons, as borrower-facing text (no severity of their own)."""
    out = []
    for characteristic, value in case.model_reasons:
        figures = {"characteristic": characteristic, "value": value}
        out.append(Reason(f"model.{characteristic}", Severity.REFER,
                          policy.model_reason["text_en"].format(**figures),
                          policy.model_reason["text_zh"].format(**figures), figures))
    return out


class _Search:
    """Offers evaluated once per (product, amount, term) within one decision."""

    def __init__(self, policy: Policy, market: Market, case: Case, pricing: Pricing) -> None:
        self.policy, self.market, self.case, self.pricing = policy, market, case, pricing
        self.evaluator = Evaluator(policy, market, case, pricing)
        self.seen: dict[tuple[str, int, Term], Offer] = {}
        self.limits: dict[tuple[str, Term], int] = {}

    def offer(self, product: Product, amount_minor: int, term: Term) -> Offer:
        key = (product.id, amount_minor, term)
        if key not in self.seen:
            self.seen[key] = self.evaluator.offer(product, amount_minor, term)
        return self.seen[key]

    def limit(self, product: Product, term: Term) -> int:
        key = (product.id, term)
        if key not in self.limits:
            amount, offer = self.evaluator.limit(product, term)
            self.limits[key] = amount
            if offer is not None:
                self.seen[(product.id, amount, term)] = offer
        return self.limits[key]


def decide(policy: Policy, market: Market, case: Case,
           pricing: Pricing | None = None) -> Decision:
    """The decision on the requested offer and the availability of every product.

    ``pricing`` shares quote facts across decisions (one per catalogue); by default each
    decision prices afresh."""
    search = _Search(policy, market, case, pricing if pricing is not None else Pricing())
    blocking = applicant_reasons(policy, market, case)
    request = case.request
    requested = market.products[request.product]
    products = tuple(_availability(search, blocking, p, p.id == requested.id)
                     for p in market.products.values())
    mine = next(a for a in products if a.product == requested.id)
    reasons = tuple(blocking) + tuple(r for r in mine.reasons if r not in blocking)
    verdict = _verdict(reasons)
    if verdict == DECLINE and any(r.code == "score.decline" for r in reasons):
        reasons += tuple(model_reasons(policy, case))
    return Decision(verdict, reasons, mine.limit_minor, mine.offer,
                    mine.alternative if verdict == DECLINE else None, products)


def _verdict(reasons: tuple[Reason, ...]) -> str:
    if any(r.severity in (Severity.KNOCK_OUT, Severity.LIMIT) for r in reasons):
        return DECLINE
    return REFER if reasons else APPROVE


def _availability(search: _Search, blocking: list[Reason], product: Product,
                  is_requested: bool) -> Availability:
    request = search.case.request
    term = request.term if is_requested else nearest_term(product, request.term)
    amount = request.amount_minor if is_requested else min(
        max(request.amount_minor, product.amount_min_minor), product.amount_max_minor)
    offer = search.offer(product, amount, term)
    hard = [r for r in blocking if r.severity is not Severity.LIMIT]
    if hard:
        reasons = tuple(hard) + offer.reasons
        refer_only = all(r.severity is Severity.REFER for r in hard)
        limit = search.limit(product, term) if refer_only and (
            not offer.reasons or offer.only_limits) else 0
        return Availability(product.id, False, limit, offer, reasons,
                            _date_alternative(search, product, amount, term, reasons))
    limit = search.limit(product, term) if not offer.reasons or offer.only_limits else 0
    if offer.available:
        return Availability(product.id, True, max(limit, amount), offer, (), None)
    alternative = _alternative(search, product, offer, limit)
    return Availability(product.id, limit > 0, limit, offer, offer.reasons, alternative)


def _date_alternative(search: _Search, product: Product, amount_minor: int, term: Term,
                      reasons: tuple[Reason, ...]) -> Alternative | None:
    dates = [r.available_from for r in reasons]
    if not dates or any(d is None for d in dates):
        return None
    later = max(d for d in dates if d is not None)
    market = replace(search.market, on=later)
    again = _Search(search.policy, market, search.case, search.pricing)
    if applicant_reasons(search.policy, market, search.case):
        return None
    offer = again.offer(product, amount_minor, term)
    return Alternative("date", offer, later) if offer.available else None


def _alternative(search: _Search, product: Product, offer: Offer,
                 limit: int) -> Alternative | None:
    for kind, candidate, amount, term in _candidates(search, product, offer, limit):
        found = search.offer(candidate, amount, term)
        if found.available:
            return Alternative(kind, found)
    return None


def _candidates(search: _Search, product: Product, offer: Offer,
                limit: int) -> Iterator[tuple[str, Product, int, Term]]:
    share = Fraction(Decimal(str(search.policy.decision["alternative_amount_share_min"])))
    if offer.only_limits and limit > 0 and limit >= share * offer.amount_minor:
        yield "amount", product, limit, offer.term
    if product.type is not LoanType.BULLET and not _product_bound(offer):
        for term in longer_terms(product, offer.term):
            yield "term", product, offer.amount_minor, term
    for other in _other_products(search, product):
        amount = min(max(offer.amount_minor, other.amount_min_minor), other.amount_max_minor)
        if amount != offer.amount_minor:
            continue
        first = nearest_term(other, offer.term)
        yield "product", other, amount, first
        for term in longer_terms(other, first)[:3]:
            yield "product", other, amount, term
    if offer.only_limits and limit > 0:
        yield "amount", product, limit, offer.term


def _product_bound(offer: Offer) -> bool:
    return any(r.code in ("bullet.no_rollover", "product.region") for r in offer.reasons)


def _other_products(search: _Search, product: Product) -> list[Product]:
    same = [p for p in search.market.products.values()
            if p.id != product.id and p.jurisdiction == product.jurisdiction
            and p.currency == product.currency]
    if product.type is LoanType.BULLET:
        same.sort(key=lambda p: (p.type is LoanType.BULLET, p.term_min.approximate_days()))
    return same
