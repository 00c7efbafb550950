"""Schedules against independent references: published Chinese amortisation figures,
Apache Fineract's asserted schedules, numpy-financial, and hand computations."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import numpy_financial as npf
import pytest

from lendsafe.domain.calendar import DayCount, Frequency
from lendsafe.domain.lending.product import FeeMode, LoanType, RateBasis, Term, TermUnit
from lendsafe.domain.lending.quote import price
from lendsafe.domain.lending.schedule import LoanTerms, build_schedule
from lendsafe.domain.money import currency

CNY = currency("CNY")


def monthly(kind: LoanType, principal: int, rate: str, months: int,
            day_count: DayCount = DayCount.THIRTY_360, start: date = date(2024, 1, 1)) -> LoanTerms:
    return LoanTerms(kind, CNY, principal, Decimal(rate), start, Term(months, TermUnit.MONTHS),
                     Frequency.MONTHLY, day_count)


# -- published Chinese calculator figures (monthly rate = annual / 12) -------------------
@pytest.mark.parametrize(("principal", "months", "payment", "first_interest", "first_principal"), [
    (63_000_000, 360, 334_358, 257_250, 77_108),
    (100_000_000, 240, 654_444, 408_333, 246_111),
    (10_000_000, 120, 105_577, 40_833, 64_744),
])
def test_equal_instalment_published(principal: int, months: int, payment: int,
                                    first_interest: int, first_principal: int) -> None:
    schedule = build_schedule(monthly(LoanType.ANNUITY, principal, "0.049", months))
    first = schedule.installments[0]
    assert first.total_minor == payment
    assert (first.interest_minor, first.principal_minor) == (first_interest, first_principal)
    assert all(i.total_minor == payment for i in schedule.installments[:-1])
    assert sum(i.principal_minor for i in schedule.installments) == principal


def test_equal_instalment_second_month_published() -> None:
    # 100,000 at 4.90% over 120 months: m2 interest 405.69, principal 650.08
    second = build_schedule(monthly(LoanType.ANNUITY, 10_000_000, "0.049", 120)).installments[1]
    assert (second.interest_minor, second.principal_minor) == (40_569, 65_008)


def test_equal_instalment_total_interest_convention() -> None:
    # published 573,688.20 is the unrounded payment × 360 − principal; we round the payment
    # once and let the last instalment absorb, so our total differs by less than 360 × 0.005
    schedule = build_schedule(monthly(LoanType.ANNUITY, 63_000_000, "0.049", 360))
    assert abs(schedule.interest_minor - 57_368_820) <= 180


def test_equal_principal_published() -> None:
    schedule = build_schedule(monthly(LoanType.EQUAL_PRINCIPAL, 63_000_000, "0.049", 360))
    rows = schedule.installments
    assert rows[0].total_minor == 432_250
    drops = {rows[k].total_minor - rows[k + 1].total_minor for k in range(len(rows) - 1)}
    assert drops <= {714, 715, 716}  # 7.15 a month, ± rounding of each month's interest
    assert abs(schedule.interest_minor - 46_433_625) <= 180  # published 464,336.25


# -- Apache Fineract's asserted schedules -------------------------------------------
def test_fineract_30_360() -> None:
    rows = build_schedule(monthly(LoanType.ANNUITY, 10_000, "0.094822", 6)).installments
    assert [r.total_minor for r in rows] == [1713] * 6
    assert [r.interest_minor for r in rows] == [79, 66, 53, 40, 27, 13]


def test_fineract_actual_365() -> None:
    terms = monthly(LoanType.ANNUITY, 10_000, "0.15678", 6, DayCount.ACT_365F)
    rows = build_schedule(terms).installments
    assert [r.total_minor for r in rows] == [1743] * 5 + [1747]
    assert [r.interest_minor for r in rows] == [133, 105, 90, 66, 46, 22]


def test_fineract_7_percent() -> None:
    rows = build_schedule(monthly(LoanType.ANNUITY, 10_000, "0.07", 6)).installments
    assert [r.total_minor for r in rows] == [1701] * 5 + [1700]


def test_whole_term_rate_not_reannualised() -> None:
    # FINERACT-2359: 100,000.00 at 1% for the whole 60-day term is 1,000.00 of interest
    terms = LoanTerms(LoanType.BULLET, CNY, 10_000_000, Decimal("0.01"), date(2024, 1, 1),
                      Term(60, TermUnit.DAYS), rate_basis=RateBasis.TERM)
    assert build_schedule(terms).interest_minor == 100_000


# -- numpy-financial ---------------------------------------------------------------
@pytest.mark.parametrize(("principal", "rate", "months"), [
    (1_000_000, "0.18", 12), (5_000_000, "0.0725", 36), (123_456, "0.2399", 7),
    (99_999_999, "0.05", 240),
])
def test_annuity_against_numpy_financial(principal: int, rate: str, months: int) -> None:
    schedule = build_schedule(monthly(LoanType.ANNUITY, principal, rate, months))
    r = float(Decimal(rate) / 12)  # numpy-financial works in float: the independent reference
    payment = -npf.pmt(r, months, principal)
    assert schedule.installments[0].total_minor == round(payment)
    periods = range(1, months + 1)
    ipmt = [-npf.ipmt(r, k, months, principal) for k in periods]
    ppmt = [-npf.ppmt(r, k, months, principal) for k in periods]
    for k, row in enumerate(schedule.installments[:-1]):
        # the reference amortises with the unrounded payment; ours rounds each period, so
        # the two may drift apart by rounding that accumulates slowly (≤ 1 minor unit per
        # 40 periods here)
        assert abs(row.interest_minor - ipmt[k]) <= 1 + k / 40
        assert abs(row.principal_minor - ppmt[k]) <= 1 + k / 40


# -- single-period loan with a deducted fee --------------------------------------------
def test_bullet_with_deducted_fee_disclosed_rate() -> None:
    # 1,000.00 for 14 days at 18% with 20.00 deducted: the borrower gets 980.00 and repays
    # 1,000.00 + 1,000 × 0.18 × 14/365 = 6.90 → 1,006.90. Cost 26.90 on 980.00 for 14 days:
    # simple annualised 26.90/980 × 365/14 = 71.5634%; compound (1 + 26.90/980)^(365/14) − 1.
    terms = LoanTerms(LoanType.BULLET, CNY, 100_000, Decimal("0.18"), date(2026, 3, 1),
                      Term(14, TermUnit.DAYS), service_fee_minor=2_000,
                      fee_mode=FeeMode.DEDUCTED)
    quote = price(terms)
    assert quote.schedule.disbursed_minor == 98_000
    assert quote.schedule.total_repayable_minor == 100_690
    assert quote.schedule.total_cost_minor == 2_690
    simple = Decimal(2690) / Decimal(98000) * Decimal(365) / Decimal(14)
    assert abs(quote.annual_rate_disclosed - simple) < Decimal("0.000001")
    compound = float(1 + Decimal(2690) / Decimal(98000)) ** (365 / 14) - 1
    assert abs(float(quote.annual_rate_compound) - compound) < 1e-6


def test_financed_fee_adds_to_principal() -> None:
    terms = LoanTerms(LoanType.BULLET, CNY, 100_000, Decimal("0.18"), date(2026, 3, 1),
                      Term(14, TermUnit.DAYS), service_fee_minor=2_000,
                      fee_mode=FeeMode.FINANCED)
    schedule = build_schedule(terms)
    assert (schedule.principal_minor, schedule.disbursed_minor) == (102_000, 100_000)
    assert schedule.installments[0].interest_minor == 704  # 1,020 × 0.18 × 14/365 = 7.0422


def test_last_instalment_absorbs_rounding_for_every_shape() -> None:
    for kind in (LoanType.ANNUITY, LoanType.EQUAL_PRINCIPAL, LoanType.INTEREST_ONLY):
        schedule = build_schedule(monthly(kind, 1_000_001, "0.1333", 7))
        assert sum(i.principal_minor for i in schedule.installments) == 1_000_001
        assert all(i.principal_minor >= 0 and i.interest_minor >= 0
                   for i in schedule.installments)


def test_weekly_and_biweekly_due_dates() -> None:
    weekly = LoanTerms(LoanType.ANNUITY, CNY, 100_000, Decimal("0.2"), date(2026, 3, 2),
                       Term(8, TermUnit.WEEKS), Frequency.WEEKLY)
    biweekly = LoanTerms(LoanType.ANNUITY, CNY, 100_000, Decimal("0.2"), date(2026, 3, 2),
                         Term(8, TermUnit.WEEKS), Frequency.BIWEEKLY)
    assert [i.due_date.day for i in build_schedule(weekly).installments][:3] == [9, 16, 23]
    assert len(build_schedule(biweekly).installments) == 4
