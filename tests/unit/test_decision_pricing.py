"""The fast availability path gives exactly the answers of the exact one, and the cap proof is
sound: whenever it says "within the cap", the IRR-method disclosed rate is within the cap.

Two methods for the same answer: ``Pricing()`` (quote facts shared across applicants, the cap
proven without the IRR search, reasons written on first use) against ``Pricing(exact=True)``
(every offer priced with the full quote and checked by ``check_quote`` on its real rates,
nothing shared), on many random applicants, products, amounts, terms and business dates.
"""

from __future__ import annotations

import dataclasses
import random
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest

from lendsafe.domain.lending.product import Term, TermUnit
from lendsafe.domain.lending.quote import price, terms_for_product
from lendsafe.domain.lending.schedule import build_schedule
from lendsafe.domain.origination.application import (
    Applicant,
    BorrowerFacts,
    Case,
    Market,
    Request,
)
from lendsafe.domain.origination.decision import Alternative, Decision, decide
from lendsafe.domain.origination.offers import Offer
from lendsafe.domain.origination.policy import Policy
from lendsafe.domain.origination.pricing import Pricing, cap_proven
from lendsafe.services.catalogue import Catalogue
from lendsafe.services.decisions import load_default_policy
from tests.random_offers import random_terms

DAYS = (date(2026, 3, 2), date(2026, 1, 30), date(2026, 9, 30))


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_default_policy()


def market_on(catalogue: Catalogue, on: date) -> Market:
    calendars = {p.id: catalogue.calendar(p) for p in catalogue.products.values()}
    return Market(catalogue.products, catalogue.jurisdictions, calendars, on)


def random_case(rng: random.Random, catalogue: Catalogue) -> Case:
    """A clean applicant most of the time; otherwise any mix of knock-outs and refer signals."""
    product = rng.choice(list(catalogue.products.values()))
    amount = rng.randrange(product.amount_min_minor, product.amount_max_minor + 1, 100)
    term = Term(rng.randint(product.term_min.count, product.term_max.count),
                product.term_min.unit)
    if rng.random() < 0.2:  # outside the product's ranges
        amount = rng.randrange(1_000, 20_000_000, 100)
        term = Term(rng.randint(1, 60), rng.choice(list(TermUnit)))
    income = rng.randrange(50_000, 3_000_000, 100)
    applicant = Applicant(35, income, rng.randrange(0, income, 100) if rng.random() < 0.7 else 0,
                          "employed", "CN-31" if product.jurisdiction == "CN" else "US-NY")
    facts = BorrowerFacts()
    if rng.random() < 0.3:
        applicant = dataclasses.replace(
            applicant, age=rng.choice([17, 30, 61]),
            employment=rng.choice(["employed", "student"]),
            region=rng.choice(["CN-31", "US-CA", "FR"]),
            device_flags=rng.choice([(), ("rooted",)]))
        open_ids = rng.choice([(), (1,), (1, 2, 3)])
        facts = BorrowerFacts(open_ids, open_ids[:1], rng.choice(
            [None, date(2026, 3, 2) - timedelta(days=rng.randint(1, 400))]))
    pd_ = Decimal(f"{rng.uniform(0.001, 0.6):.6f}")
    return Case(applicant, Request(product.id, amount, term, product.currency), facts, pd_,
                (("purpose", "car (new)"),))


def shown(offer: Offer | None) -> Any:
    if offer is None:
        return None
    return (offer.product, offer.amount_minor, str(offer.term), offer.annual_rate,
            offer.severities, tuple(r.as_dict() for r in offer.reasons),
            offer.annual_rate_disclosed,
            None if offer.priced is None else (offer.priced.installments,
                                               offer.priced.payment_monthly))


def alternative(found: Alternative | None) -> Any:
    return None if found is None else (found.kind, shown(found.offer), found.available_from)


def answer(decision: Decision) -> Any:
    """Everything the decision says, disclosed rates included."""
    return (decision.decision, tuple(r.as_dict() for r in decision.reasons),
            decision.limit_minor, shown(decision.offer), alternative(decision.alternative),
            tuple((a.product, a.available, a.limit_minor, shown(a.offer),
                   tuple(r.as_dict() for r in a.reasons), alternative(a.alternative))
                  for a in decision.products))


def test_fast_path_answers_exactly_as_the_exact_path(policy: Policy,
                                                     catalogue: Catalogue) -> None:
    rng = random.Random(20261129)
    shared = Pricing()
    codes: set[str] = set()
    for n in range(160):
        market = market_on(catalogue, DAYS[n % len(DAYS)])
        case = random_case(rng, catalogue)
        exact = answer(decide(policy, market, case, Pricing(exact=True)))
        assert answer(decide(policy, market, case, shared)) == exact, case
        assert answer(decide(policy, market, case)) == exact, case
        codes.update(r["code"] for r in exact[1])
    # the sample reaches the interesting rules, the cap among them
    assert {"pricing.above_cap", "affordability.debt_service", "expected_loss.budget",
            "product.limits", "bullet.no_rollover"} <= codes


def test_cap_proof_is_sound_and_usually_decides(catalogue: Catalogue) -> None:
    rng = random.Random(7)
    cn = catalogue.jurisdictions["CN"]
    assert cn.annual_cost_cap is not None
    proven = 0
    products = [p for p in catalogue.products.values() if p.jurisdiction == "CN"]
    for n in range(400):
        terms = random_terms(rng, catalogue, products, DAYS[n % 3],
                             ["0", "0.02", "0.04", "0.05", "0.08"])
        if cap_proven(cn, terms, build_schedule(terms)):
            proven += 1
            assert price(terms).annual_rate_disclosed <= cn.annual_cost_cap, terms
    assert proven > 200  # the proof decides most offers without the IRR search


def test_cap_proof_refuses_what_it_cannot_prove(catalogue: Catalogue) -> None:
    product = catalogue.products["cn-weekly"]  # a financed fee over 4 weeks: above 24 %
    terms = terms_for_product(product, 100_000, Term(4, TermUnit.WEEKS), DAYS[0],
                              catalogue.calendar(product), Decimal("0.21"))
    cn = catalogue.jurisdictions["CN"]
    assert price(terms).annual_rate_disclosed > Decimal(str(cn.annual_cost_cap))
    assert not cap_proven(cn, terms, build_schedule(terms))
    compound = dataclasses.replace(cn, cap_measure="compound")
    bullet = catalogue.products["cn-bullet"]
    small = terms_for_product(bullet, 100_000, Term(14, TermUnit.DAYS), DAYS[0],
                              catalogue.calendar(bullet), Decimal("0.18"))
    assert cap_proven(cn, small, build_schedule(small))
    assert not cap_proven(compound, small, build_schedule(small))  # exact path for compound


def test_a_changed_cap_or_product_is_never_answered_from_the_cache(catalogue: Catalogue) -> None:
    """An approved change replaces the rules or the definition: what was priced under the
    old ones is forgotten (a lowered cap must refuse at once, not after the cache turns)."""
    product = catalogue.products["cn-bullet"]
    rules = catalogue.jurisdictions[product.jurisdiction]
    calendar = catalogue.calendar(product)
    pricing = Pricing()
    args = (100_000, Term(14, TermUnit.DAYS), DAYS[0], calendar, product.annual_rate)
    before = pricing.priced(product, *args, rules)
    assert before is not None and before.legal == ()
    lowered = dataclasses.replace(rules, annual_cost_cap=Decimal("0.01"))
    after = pricing.priced(product, *args, lowered)
    assert after is not None and after.legal, "priced under the old cap"
    dearer = dataclasses.replace(product, annual_rate=product.annual_rate + Decimal("0.01"))
    repriced = pricing.priced(dearer, *args[:-1], dearer.annual_rate, rules)
    assert repriced is not None and repriced.legal == ()
    assert pricing.priced(product, *args, rules) == before  # the old rules priced afresh
