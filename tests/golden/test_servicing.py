"""Servicing against published examples and hand computations."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest

from lendsafe.domain import events as ev
from lendsafe.domain.lending.loan import LoanStatus, ServicingError, close_day
from lendsafe.domain.lending.payments import apply_payment, payoff_amount
from lendsafe.domain.lending.product import (
    AllocationRule,
    LoanType,
    Prepayment,
    parse_allocation,
)
from tests.servicing_helpers import monthly_terms, open_state, run_days


def test_fineract_payoff_interest_to_date() -> None:
    # Fineract: 100.00 at 7%, 6 monthly, 30/360; instalment 1 paid on 2024-02-01; a payoff
    # on 2024-02-15 is 83.81 when interest runs to the payoff date.
    state, _ = open_state(monthly_terms(10_000, "0.07", 6, date(2024, 1, 1)))
    state = run_days(state, date(2024, 1, 31))
    state, allocation, _ = apply_payment(state, 1, 1_701, date(2024, 2, 1))
    assert (allocation.interest_minor, allocation.principal_minor) == (58, 1_643)
    state = run_days(state, date(2024, 2, 14))
    quote = payoff_amount(state, date(2024, 2, 15))
    assert quote.total_minor == 8_381
    closed, allocation, _ = apply_payment(state, 2, quote.total_minor, date(2024, 2, 15))
    assert closed.status is LoanStatus.CLOSED
    assert closed.principal_outstanding == 0 and allocation.excess_minor == 0


def test_allocation_order_penalty_fee_interest_principal() -> None:
    # After Fineract's allocation example: 3,000.00 flat-rate-like instalment of 1,000.00
    # principal + 30.00 interest, a 50.00 fee and 100.00 of penalties; a payment of
    # 1,180.00 under "penalty, fee, interest, principal" pays 100 / 50 / 30 / 1,000.
    terms = monthly_terms(300_000, "0.12", 3, date(2023, 1, 1), kind=LoanType.EQUAL_PRINCIPAL)
    state, _ = open_state(terms)
    rows = list(state.installments)
    rows[0] = replace(rows[0], fee_due=5_000)
    state = replace(state, installments=tuple(rows))
    state = run_days(state, date(2023, 2, 1))  # instalment 1 due 2023-02-01, unpaid
    state = replace(state, penalty_recognized=10_000)
    _, allocation, events = apply_payment(state, 1, 118_000, date(2023, 2, 2))
    assert (allocation.penalty_minor, allocation.fee_minor, allocation.interest_minor,
            allocation.principal_minor) == (10_000, 5_000, 3_000, 100_000)
    assert isinstance(events[-1], ev.PaymentAllocated)


def test_vertical_allocation_pays_interest_across_instalments_first() -> None:
    terms = monthly_terms(300_000, "0.12", 3, date(2023, 1, 1), kind=LoanType.EQUAL_PRINCIPAL)
    state, _ = open_state(terms)
    order = parse_allocation({"order": [f"{b}:{c}" for b in ("past_due", "due", "in_advance")
                                        for c in ("interest", "principal", "penalty", "fee")],
                              "per_installment": False})
    state = replace(state, rules=replace(state.rules, allocation=order))
    state = run_days(state, date(2023, 3, 5))  # two instalments overdue
    _, allocation, _ = apply_payment(state, 1, 5_000, date(2023, 3, 6))
    # vertical: interest of both overdue instalments (30.00 + 20.00) before any principal
    assert (allocation.interest_minor, allocation.principal_minor) == (5_000, 0)
    horizontal = replace(state, rules=replace(state.rules, allocation=AllocationRule(
        order.order, per_installment=True)))
    _, allocation, _ = apply_payment(horizontal, 1, 5_000, date(2023, 3, 6))
    assert (allocation.interest_minor, allocation.principal_minor) == (3_000, 2_000)


def test_penalty_starts_after_grace_and_follows_the_rate() -> None:
    # 1,000.00 bullet at 18% for 30 days; unpaid. Penalty 18% a year on the arrears of
    # 1,014.79 starts the day days-past-due exceeds 3: 1,014.79 × 0.18 / 365 = 0.5004 → 0.50
    from lendsafe.domain.lending.product import Term, TermUnit
    from lendsafe.domain.lending.schedule import LoanTerms
    from lendsafe.domain.money import currency

    terms = LoanTerms(LoanType.BULLET, currency("CNY"), 100_000, __import__("decimal").Decimal(
        "0.18"), date(2026, 3, 1), Term(30, TermUnit.DAYS))
    state, _ = open_state(terms)
    events: list[ev.LoanEvent] = []
    state = run_days(state, date(2026, 4, 3), events)
    assert not [e for e in events if isinstance(e, ev.PenaltyAccrued)]
    assert state.days_past_due == 3 and state.bucket == "1-30"
    state, new = close_day(state, date(2026, 4, 4))
    penalties = [e.amount_minor for e in new if isinstance(e, ev.PenaltyAccrued)]
    assert penalties == [50] and state.days_past_due == 4


def test_charge_off_writes_off_every_receivable_and_recovery_is_income() -> None:
    state, _ = open_state(monthly_terms(100_000, "0.18", 3, date(2026, 1, 1)), charge_off=30)
    events: list[ev.LoanEvent] = []
    state = run_days(state, date(2026, 3, 3), events)
    assert state.status is LoanStatus.CHARGED_OFF
    (charge_off,) = [e for e in events if isinstance(e, ev.LoanChargedOff)]
    assert charge_off.principal_minor == 100_000 and charge_off.interest_minor > 0
    assert state.principal_outstanding == 0 == state.interest_receivable
    state, _, recovery = apply_payment(state, 9, 12_345, state.open_date)
    assert recovery == [ev.RecoveryReceived(1, state.open_date, 9, 12_345)]
    assert state.recovered == 12_345


@pytest.mark.parametrize(("prepayment", "expected_rows"), [
    (Prepayment.REDUCE_TERM, 3),
    (Prepayment.REDUCE_INSTALLMENT, 6),
])
def test_prepayment_reduce_term_or_instalment(prepayment: Prepayment, expected_rows: int) -> None:
    state, _ = open_state(monthly_terms(600_000, "0.12", 6, date(2026, 1, 1)),
                          prepayment=prepayment)
    state = run_days(state, date(2026, 1, 14))
    state, allocation, _ = apply_payment(state, 1, 300_000, date(2026, 1, 15))
    # interest to date first: the period's 60.00 prorated by actual days, 14 of 31 → 27.10
    # (Fineract's proration, as in its 83.81 payoff example)
    assert allocation.interest_minor == 2_710
    assert allocation.principal_minor == 297_290
    assert len(state.installments) == expected_rows
    assert state.principal_outstanding == 600_000 - 297_290
    first = state.installments[0]
    # the first instalment then owes the remaining 17 of 31 days at 1% a month on 3,027.10:
    # 302,710 × 0.01 × 17/31 = 1,660.02 → 1,660
    assert first.interest_due == 2_710 + 1_660
    level = 103_529  # 6,000.00 at 1% a month over 6 months
    new_totals = [r.principal_due + r.interest_due for r in state.installments]
    new_totals[0] -= 2_710 + 297_290  # what was paid on the first instalment today
    if prepayment is Prepayment.REDUCE_TERM:
        # 3,027.10 at the same 1,035.29 a month is repaid in three instalments
        assert new_totals[:-1] == [level, level] and new_totals[-1] < level
    else:
        # the same six dates with a new level instalment on 3,027.10: the head period's rate
        # is 1% × 17/31, the other five 1%; payment = B / Σ Π (1 + r)^-1, half-up
        from fractions import Fraction

        rates = [Fraction(1, 100) * Fraction(17, 31)] + [Fraction(1, 100)] * 5
        discount, factor = Fraction(1), Fraction(0)
        for rate in rates:
            discount /= 1 + rate
            factor += discount
        payment = int(Fraction(302_710) / factor + Fraction(1, 2))
        assert new_totals[:-1] == [payment] * 5


def test_payment_refusals() -> None:
    state, _ = open_state(monthly_terms(100_000, "0.12", 3, date(2026, 1, 1)))
    with pytest.raises(ServicingError, match="positive"):
        apply_payment(state, 1, 0, date(2026, 1, 1))
    with pytest.raises(ServicingError, match="before the loan was disbursed"):
        apply_payment(state, 1, 100, date(2025, 12, 31))
    with pytest.raises(ServicingError, match="open business date"):
        apply_payment(state, 1, 100, date(2026, 1, 5))
    closed, _, _ = apply_payment(state, 1, payoff_amount(state, state.open_date).total_minor,
                                 state.open_date)
    with pytest.raises(ServicingError, match="closed"):
        apply_payment(closed, 2, 100, closed.open_date)
    with pytest.raises(ServicingError, match="run the missing dates"):
        close_day(state, state.open_date + timedelta(days=2))
