"""Every credit policy rule: a case that triggers it, its code, severity and both texts."""

from __future__ import annotations

import dataclasses
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from lendsafe.domain.lending.product import parse_term
from lendsafe.domain.money import currency
from lendsafe.domain.origination.application import (
    Applicant,
    BorrowerFacts,
    Case,
    Market,
    Request,
)
from lendsafe.domain.origination.decision import decide
from lendsafe.domain.origination.policy import REQUIRED_RULES, Policy, Severity
from lendsafe.services.catalogue import Catalogue
from lendsafe.services.decisions import load_default_policy

ON = date(2026, 3, 2)


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_default_policy()


@pytest.fixture(scope="module")
def market(catalogue: Catalogue) -> Market:
    calendars = {p.id: catalogue.calendar(p) for p in catalogue.products.values()}
    return Market(catalogue.products, catalogue.jurisdictions, calendars, ON)


def case(product: str = "cn-bullet", amount: str = "2000.00", term: str = "30d",
         pd: str = "0.05", facts: BorrowerFacts | None = None, **applicant: Any) -> Case:
    cny = currency("CNY")
    person = {"age": 30, "monthly_income_minor": 800_000, "monthly_obligations_minor": 0,
              "employment": "employed", "region": "CN-31", **applicant}
    amount_minor = int(Decimal(amount) * 100)
    return Case(Applicant(**person), Request(product, amount_minor, parse_term(term), cny),
                facts or BorrowerFacts(), Decimal(pd))


def with_jurisdiction(market: Market, **changes: Any) -> Market:
    cn = dataclasses.replace(market.jurisdictions["CN"], **changes)
    return dataclasses.replace(market, jurisdictions={**market.jurisdictions, "CN": cn})


SCENARIOS: dict[str, tuple[dict[str, Any], dict[str, Any], tuple[str, ...]]] = {
    # code: (case arguments, jurisdiction changes, figures that both texts must show)
    "age.min": ({"age": 17}, {}, ("17", "18")),
    "age.max": ({"age": 61}, {}, ("61", "60")),
    "income.minimum": ({"monthly_income_minor": 100_000}, {}, ("1000.00", "1500.00")),
    "employment.refer": ({"employment": "student"}, {}, ("student",)),
    "blocklist.match": ({"facts": BorrowerFacts(blocklisted=("phone",))}, {}, ("phone",)),
    "fraud.device": ({"device_flags": ("emulator",)}, {}, ("emulator",)),
    "consortium.recent_applications": ({"applications_30d": 9}, {}, ("9", "6")),
    "default.cooling_off": ({"facts": BorrowerFacts(last_charged_off_on=date(2026, 1, 1))},
                            {}, ("2026-01-01", "2026-06-30")),
    "loans.max_concurrent": ({"facts": BorrowerFacts(open_loan_ids=(1, 2, 3))}, {}, ("3",)),
    "bullet.no_rollover": ({"facts": BorrowerFacts((7,), (7,))}, {}, ("7", "CN")),
    "product.region": ({"region": "US-CA"}, {}, ("cn-bullet", "US-CA")),
    "product.limits": ({"amount": "6000.00"}, {}, ("5000.00", "6000.00")),
    "legal.limits": ({}, {"amount_max_minor": 150_000}, ("CN", "CN.amount_range")),
    "pricing.above_cap": ({"pd": "0.10"}, {"annual_cost_cap": Decimal("0.19")},
                          ("19.00%",)),
    "affordability.payment_to_income": ({"amount": "5000.00"}, {}, ("40.0%", "8000.00")),
    "affordability.debt_service": ({"monthly_obligations_minor": 350_000}, {},
                                   ("55.0%", "3500.00")),
    "expected_loss.budget": ({"product": "cn-annuity", "amount": "20000.00", "term": "12m",
                              "pd": "0.30"}, {}, ("600.00",)),
    "score.decline": ({"pd": "0.62"}, {}, ("62.0%",)),
    "score.refer": ({"pd": "0.40", "amount": "1000.00"}, {}, ("40.0%",)),
}


def test_every_rule_has_a_scenario(policy: Policy) -> None:
    assert set(SCENARIOS) == set(REQUIRED_RULES) == set(policy.rules)


@pytest.mark.parametrize("code", sorted(SCENARIOS))
def test_rule_triggers_with_code_and_both_texts(policy: Policy, market: Market,
                                                code: str) -> None:
    arguments, changes, shown = SCENARIOS[code]
    decision = decide(policy, with_jurisdiction(market, **changes) if changes else market,
                      case(**arguments))
    found = [r for r in decision.reasons if r.code == code]
    assert found, f"{code} not triggered: {[r.code for r in decision.reasons]}"
    reason = found[0]
    assert reason.severity is policy.rule(code).severity
    for text in (reason.text_en, reason.text_zh):
        assert "{" not in text and "}" not in text, text
        for figure in shown:
            assert figure in text, (code, figure, text)
    assert any("\u4e00" <= ch <= "\u9fff" for ch in reason.text_zh)
    expected = {Severity.KNOCK_OUT: "decline", Severity.LIMIT: "decline",
                Severity.REFER: "refer"}[reason.severity]
    assert decision.decision == expected


def test_a_clean_application_is_approved(policy: Policy, market: Market) -> None:
    decision = decide(policy, market, case())
    assert decision.decision == "approve" and decision.reasons == ()
    assert decision.limit_minor >= 200_000
    assert decision.offer.quote is not None


def test_cooling_off_ends_on_its_date(policy: Policy, market: Market) -> None:
    facts = BorrowerFacts(last_charged_off_on=date(2026, 1, 1))
    later = dataclasses.replace(market, on=date(2026, 6, 30))
    assert decide(policy, later, case(facts=facts)).decision == "approve"
    day_before = dataclasses.replace(market, on=date(2026, 6, 29))
    assert decide(policy, day_before, case(facts=facts)).decision == "decline"


def test_risk_price_rises_with_pd_and_stays_within_the_cap(policy: Policy,
                                                           market: Market) -> None:
    rates = [decide(policy, market, case(pd=pd)).offer.annual_rate
             for pd in ("0.01", "0.10", "0.20", "0.34")]
    assert rates == sorted(rates) and rates[0] < rates[-1]
    cap = market.jurisdictions["CN"].annual_cost_cap
    assert cap is not None
    for pd in ("0.01", "0.34"):
        quote = decide(policy, market, case(pd=pd)).offer.quote
        assert quote is not None and quote.annual_rate_disclosed <= cap


def test_policy_file_problems_are_refused() -> None:
    from lendsafe.domain.origination.policy import load_policy

    with pytest.raises(ValueError, match="rules missing"):
        load_policy({"version": "x", "rules": {}, "expected_loss": {}, "pricing": []}, b"")
