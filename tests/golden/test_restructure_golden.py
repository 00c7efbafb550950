"""Golden restructuring examples: Apache Fineract's re-amortisation, re-ageing and
single-period extension, and each kind of change on a known loan checked against an
independent computation (the origination schedule builder on the new terms)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

import pytest

from lendsafe.domain import restructure_events as rev
from lendsafe.domain.calendar import DayCount, Frequency
from lendsafe.domain.lending.loan import (
    InstallmentState,
    LoanState,
    LoanStatus,
    ServicingRules,
)
from lendsafe.domain.lending.product import LoanType, Prepayment, Term, TermUnit
from lendsafe.domain.lending.restructure import (
    ChangeHistory,
    ChangeKind,
    ChangeRequest,
    HolidayInterest,
    KindPolicy,
    restructure,
)
from lendsafe.domain.lending.schedule import LoanTerms, build_schedule
from lendsafe.domain.money import Rounding, currency
from lendsafe.domain.problems import Refused
from tests.servicing_helpers import open_policy, open_state, run_days

OPEN_POLICY = open_policy(days_max=400)


def _zero_rate_rules(kind: LoanType = LoanType.ANNUITY) -> ServicingRules:
    return ServicingRules(type=kind, annual_rate=Decimal(0), day_count=DayCount.ACT_365F,
                          rounding=Rounding.HALF_UP, frequency=Frequency.BIWEEKLY,
                          periodic_fee_minor=0, penalty_rate_ppm=0, grace_days=0,
                          charge_off_days=90, prepayment=Prepayment.REDUCE_TERM)


def _down_payment_loan(principal: int) -> LoanState:
    """Fineract's loans: 25% down payment paid at disbursement, 3 rows every 15 days."""
    start = date(2024, 1, 1)
    down = principal // 4
    rows = [InstallmentState(1, start, start, down, 0, 0, principal_paid=down)]
    each = (principal - down) // 3
    for n in range(1, 4):
        rows.append(InstallmentState(n + 1, start + timedelta(days=15 * (n - 1)),
                                     start + timedelta(days=15 * n), each, 0, 0))
    return LoanState(1, LoanStatus.ACTIVE, start, _zero_rate_rules(), tuple(rows),
                     last_closed=start - timedelta(days=1), accrual_start=start)


def _change(state: LoanState, request: ChangeRequest) -> LoanState:
    return restructure(state, request, OPEN_POLICY, ChangeHistory(), state.open_date).after


def test_fineract_reamortisation_spreads_the_overdue_instalment_187_188() -> None:
    state = run_days(_down_payment_loan(50_000), date(2024, 1, 19))
    assert state.days_past_due == 3 and state.bucket == "1-30"
    policy = replace(OPEN_POLICY, kinds={**OPEN_POLICY.kinds, ChangeKind.REAMORTISATION: KindPolicy(
        ChangeKind.REAMORTISATION, approval=False, spread_multiple_minor=100)})  # 1.00
    after = restructure(state, ChangeRequest(ChangeKind.REAMORTISATION), policy,
                        ChangeHistory(), state.open_date).after
    assert [r.principal_due for r in after.installments] == [12_500, 0, 18_700, 18_800]
    assert [r.due_date for r in after.installments] == [r.due_date for r in state.installments]
    assert after.principal_outstanding == state.principal_outstanding == 37_500
    assert after.days_past_due == 0 and after.bucket == "current"
    closed = run_days(after, date(2024, 1, 30))
    assert closed.days_past_due == 0 and closed.bucket == "current"


def test_fineract_reageing_six_monthly_125_clears_delinquency() -> None:
    state = run_days(_down_payment_loan(100_000), date(2024, 2, 19))
    assert state.open_date == date(2024, 2, 20) and state.bucket == "31-60"
    assert state.days_past_due_on(state.open_date) == 35
    request = ChangeRequest(ChangeKind.REAGEING, count=6, frequency=Frequency.MONTHLY,
                            first_due=date(2024, 3, 1))
    after = _change(state, request)
    new = [r for r in after.installments if r.due_date > state.open_date]
    assert [(r.due_date, r.principal_due, r.interest_due) for r in new] == [
        (date(2024, m, 1), 12_500, 0) for m in range(3, 9)]
    assert after.principal_outstanding == 75_000
    assert after.days_past_due == 0 and after.bucket == "current"
    for day in (date(2024, 2, 20), date(2024, 3, 1)):
        after = run_days(after, day)
        assert after.days_past_due == 0 and after.bucket == "current", day


def test_fineract_single_period_extension_127_95_plus_3_65_is_131_60_a_month_later() -> None:
    start, due = date(2023, 5, 14), date(2023, 6, 13)
    rules = replace(_zero_rate_rules(LoanType.BULLET), annual_rate=Decimal("0.28712"),
                    frequency=None)
    row = InstallmentState(1, start, due, 12_500, 295, 0)
    state = LoanState(1, LoanStatus.ACTIVE, start, rules, (row,), start - timedelta(days=1),
                      start)
    state = run_days(state, date(2023, 6, 10))
    result = restructure(state, ChangeRequest(ChangeKind.EXTENSION, days=30, fee_minor=365),
                         OPEN_POLICY, ChangeHistory(), state.open_date)
    (moved,) = result.after.installments
    assert moved.due_date == date(2023, 7, 13)
    assert moved.principal_due + moved.interest_due + moved.fee_due == 13_160
    events: list[object] = []
    after = run_days(result.after, date(2023, 7, 13), events)  # type: ignore[arg-type]
    assert [e.amount_minor for e in events  # type: ignore[attr-defined]
            if type(e).__name__ == "FeeCharged"] == [365]
    assert after.days_past_due == 0 and after.installments[0].interest_recognized == 295
    assert run_days(after, date(2023, 7, 14)).days_past_due == 1


# -- each kind on a known loan against the origination schedule builder --------------

START = date(2026, 1, 15)


def _annuity_terms(amount: int, rate: str, months: int, start: date = START) -> LoanTerms:
    return LoanTerms(LoanType.ANNUITY, currency("CNY"), amount, Decimal(rate), start,
                     Term(months, TermUnit.MONTHS), Frequency.MONTHLY, DayCount.THIRTY_360,
                     Rounding.HALF_UP)


def _rows(schedule_terms: LoanTerms) -> list[tuple[date, int, int]]:
    return [(i.due_date, i.principal_minor, i.interest_minor)
            for i in build_schedule(schedule_terms).installments]


def _after_rows(state: LoanState, skip: int = 0) -> list[tuple[date, int, int]]:
    return [(r.due_date, r.principal_due, r.interest_due) for r in state.installments[skip:]]


def test_deferral_capitalised_equals_a_new_schedule_on_the_larger_balance() -> None:
    state, _ = open_state(_annuity_terms(1_200_000, "0.12", 12))
    result = restructure(state, ChangeRequest(ChangeKind.DEFERRAL, count=3,
                                              holiday_interest=HolidayInterest.CAPITALISED),
                         OPEN_POLICY, ChangeHistory(), state.open_date)
    holiday = result.after.installments[:3]
    assert all(r.principal_due == r.interest_due == 0 for r in holiday)
    capitalised = sum(e.amount_minor for e in result.events
                      if isinstance(e, rev.InterestCapitalised))
    assert capitalised == 3 * 12_000  # 1% a month on 12,000.00, 30/360
    expected = _rows(_annuity_terms(1_236_000, "0.12", 12, date(2026, 4, 15)))
    assert _after_rows(result.after, 3) == expected


@pytest.mark.parametrize("policy", [HolidayInterest.ACCRUED, HolidayInterest.WAIVED])
def test_deferral_accrued_or_waived_keeps_the_principal(policy: HolidayInterest) -> None:
    state, _ = open_state(_annuity_terms(1_200_000, "0.12", 12))
    after = _change(state, ChangeRequest(ChangeKind.DEFERRAL, count=2, holiday_interest=policy))
    base = _rows(_annuity_terms(1_200_000, "0.12", 12, date(2026, 3, 15)))
    extra = 24_000 if policy is HolidayInterest.ACCRUED else 0
    got = _after_rows(after, 2)
    assert [(d, p) for d, p, _ in got] == [(d, p) for d, p, _ in base]
    assert sum(i for _, _, i in got) == sum(i for _, _, i in base) + extra
    assert after.principal_outstanding == 1_200_000


def test_extension_rate_reduction_and_due_date_change_against_the_builder() -> None:
    state, _ = open_state(_annuity_terms(1_200_000, "0.12", 12))
    extended = _change(state, ChangeRequest(ChangeKind.EXTENSION, count=6))
    assert _after_rows(extended) == _rows(_annuity_terms(1_200_000, "0.12", 18))
    cheaper = _change(state, ChangeRequest(ChangeKind.RATE_REDUCTION,
                                           annual_rate=Decimal("0.06")))
    assert _after_rows(cheaper) == _rows(_annuity_terms(1_200_000, "0.06", 12))
    assert cheaper.rules.annual_rate == Decimal("0.06")
    moved = _change(state, ChangeRequest(ChangeKind.DUE_DATE_CHANGE, first_due=date(2026, 2, 25)))
    dates = [r.due_date for r in moved.installments]
    assert dates == [date(2026, 2, 25)] + [date(2026 + (m // 12), m % 12 + 1, 25)
                                           for m in range(2, 13)]
    assert moved.installments[0].interest_due == 16_000  # 40 days at 12%, 30/360
    assert sum(r.principal_due for r in moved.installments) == 1_200_000


def test_instalment_conversion_equals_an_annuity_booked_on_the_same_day() -> None:
    bullet = LoanTerms(LoanType.BULLET, currency("CNY"), 300_000, Decimal("0.18"),
                       date(2026, 3, 2), Term(30, TermUnit.DAYS))
    state, _ = open_state(bullet)
    after = _change(state, ChangeRequest(ChangeKind.CONVERSION, count=3,
                                         frequency=Frequency.MONTHLY))
    annuity = LoanTerms(LoanType.ANNUITY, currency("CNY"), 300_000, Decimal("0.18"),
                        date(2026, 3, 2), Term(3, TermUnit.MONTHS), Frequency.MONTHLY,
                        DayCount.ACT_365F, Rounding.HALF_UP)
    assert _after_rows(after) == _rows(annuity)
    assert after.rules.type is LoanType.ANNUITY


def test_waivers_forgive_recognised_amounts_only() -> None:
    terms = replace(_annuity_terms(1_200_000, "0.12", 6), periodic_fee_minor=500)
    state, _ = open_state(terms, penalty_ppm=365_000, grace=0)
    state = run_days(state, date(2026, 3, 20))  # two instalments unpaid
    assert state.fee_receivable == 1_000 and state.penalty_receivable > 0
    waived = _change(state, ChangeRequest(ChangeKind.FEE_WAIVER, amount_minor=700))
    assert waived.fee_receivable == 300
    assert waived.principal_outstanding == state.principal_outstanding
    no_penalty = _change(state, ChangeRequest(ChangeKind.PENALTY_WAIVER))
    assert no_penalty.penalty_receivable == 0
    with pytest.raises(Refused, match=r"fee-waiver\.amount"):
        _change(state, ChangeRequest(ChangeKind.FEE_WAIVER, amount_minor=1_001))
