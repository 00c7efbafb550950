"""Product availability ("单期借款点不了"): reasons and the nearest alternative that passes."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest

from lendsafe.domain.lending.product import LoanType
from lendsafe.domain.origination.application import BorrowerFacts, Market
from lendsafe.domain.origination.decision import Decision, decide
from lendsafe.domain.origination.offers import evaluate_offer, limit_for
from lendsafe.domain.origination.policy import Policy
from lendsafe.services.catalogue import Catalogue
from lendsafe.services.decisions import load_default_policy
from tests.unit.test_policy_rules import ON, case


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_default_policy()


@pytest.fixture(scope="module")
def market(catalogue: Catalogue) -> Market:
    calendars = {p.id: catalogue.calendar(p) for p in catalogue.products.values()}
    return Market(catalogue.products, catalogue.jurisdictions, calendars, ON)


def entry(decision: Decision, product: str):  # type: ignore[no-untyped-def]
    return next(a for a in decision.products if a.product == product)


def assert_passes(policy: Policy, market: Market, the_case, alternative) -> None:  # type: ignore[no-untyped-def]
    """Re-run every product rule on the alternative itself: it must pass."""
    offer = alternative.offer
    again = evaluate_offer(policy, dataclasses.replace(market, on=alternative.available_from
                                                       or market.on),
                           the_case, market.products[offer.product], offer.amount_minor,
                           offer.term)
    assert again.available, [r.code for r in again.reasons]


def test_open_bullet_loan_declines_bullet_and_offers_instalments(policy: Policy,
                                                                  market: Market) -> None:
    the_case = case(amount="3000.00", facts=BorrowerFacts((11,), (11,)))
    decision = decide(policy, market, the_case)
    assert decision.decision == "decline"
    assert [r.code for r in decision.reasons] == ["bullet.no_rollover"]
    bullet = entry(decision, "cn-bullet")
    assert not bullet.available and bullet.reasons[0].code == "bullet.no_rollover"
    alternative = decision.alternative
    assert alternative is not None and alternative.kind == "product"
    assert market.products[alternative.offer.product].type is not LoanType.BULLET
    assert alternative.offer.amount_minor == 300_000
    assert_passes(policy, market, the_case, alternative)
    # the instalment products themselves are available to this applicant
    assert entry(decision, "cn-annuity").available


def test_unaffordable_bullet_gets_instalment_alternative(policy: Policy,
                                                         market: Market) -> None:
    # 5,000.00 in one payment is far above 40% of a 4,000.00 income; the bullet limit is
    # under half of the request, so the nearest passing offer keeps the amount in instalments
    the_case = case(amount="5000.00", monthly_income_minor=400_000)
    decision = decide(policy, market, the_case)
    assert decision.decision == "decline"
    assert "affordability.payment_to_income" in {r.code for r in decision.reasons}
    alternative = decision.alternative
    assert alternative is not None and alternative.kind in ("product", "term")
    assert market.products[alternative.offer.product].type is not LoanType.BULLET
    assert alternative.offer.amount_minor == 500_000
    assert_passes(policy, market, the_case, alternative)
    bullet = entry(decision, "cn-bullet")
    assert bullet.available and 0 < bullet.limit_minor < 250_000


def test_smaller_amount_when_the_limit_is_close(policy: Policy, market: Market) -> None:
    the_case = case(amount="5000.00")  # income 8,000.00: limit about 3,100.00
    decision = decide(policy, market, the_case)
    alternative = decision.alternative
    assert decision.decision == "decline" and alternative is not None
    assert alternative.kind == "amount" and alternative.offer.product == "cn-bullet"
    assert alternative.offer.amount_minor == decision.limit_minor
    assert_passes(policy, market, the_case, alternative)
    # one step above the limit fails: the limit is the highest passing amount on the grid
    above = evaluate_offer(policy, market, the_case, market.products["cn-bullet"],
                           decision.limit_minor + 10_000, alternative.offer.term)
    assert not above.available


def test_cooling_off_offers_the_date_it_ends(policy: Policy, market: Market) -> None:
    the_case = case(facts=BorrowerFacts(last_charged_off_on=date(2026, 1, 1)))
    decision = decide(policy, market, the_case)
    bullet = entry(decision, "cn-bullet")
    assert not bullet.available
    assert bullet.alternative is not None and bullet.alternative.kind == "date"
    assert bullet.alternative.available_from == date(2026, 6, 30)
    assert_passes(policy, market, the_case, bullet.alternative)


def test_permanent_knock_out_has_no_alternative(policy: Policy, market: Market) -> None:
    decision = decide(policy, market, case(age=17))
    assert decision.decision == "decline" and decision.alternative is None
    assert all(not a.available and a.alternative is None for a in decision.products)


def test_every_product_is_reported_with_limit_or_reasons(policy: Policy,
                                                         market: Market) -> None:
    decision = decide(policy, market, case())
    assert {a.product for a in decision.products} == set(market.products)
    for item in decision.products:
        if item.available:
            assert item.limit_minor >= market.products[item.product].amount_min_minor
        else:
            assert item.reasons
    assert not entry(decision, "us-payday").available
    assert entry(decision, "us-payday").reasons[0].code == "product.region"


def test_limit_search_agrees_with_a_brute_force_scan(policy: Policy, market: Market) -> None:
    the_case = case(monthly_income_minor=500_000, monthly_obligations_minor=50_000)
    product = market.products["cn-bullet"]
    term = the_case.request.term
    limit, _ = limit_for(policy, market, the_case, product, term)
    passing = [a for a in range(10_000, 500_001, 10_000)
               if evaluate_offer(policy, market, the_case, product, a, term).available]
    assert limit == max(passing)
