"""Hypothesis properties of restructuring: for random loans and random sequences of
payments, business days and changes of every kind, money is conserved, the journal
balances and equals the state, the principal owed changes only by capitalisation, every
disclosure matches the schedule it describes, and a refused change changes nothing."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lendsafe.domain.ledger.restructure_posting  # noqa: F401  (registers the rules)
from lendsafe.domain import events as ev
from lendsafe.domain import restructure_events as rev
from lendsafe.domain.calendar import Frequency
from lendsafe.domain.ledger.accounts import Account
from lendsafe.domain.lending.loan import LoanState, LoanStatus, ServicingRules, close_day, open_loan
from lendsafe.domain.lending.payments import apply_payment, payoff_amount
from lendsafe.domain.lending.restructure import (
    ChangeHistory,
    ChangeKind,
    ChangeRequest,
    HolidayInterest,
    disclose,
    restructure,
)
from lendsafe.domain.lending.schedule import LoanTerms, build_schedule
from lendsafe.domain.problems import Refused
from tests.property.test_servicing_properties import START, _balances, _check_state, loans
from tests.servicing_helpers import open_policy

POLICY = open_policy(max_per_loan=99, count_max=6, days_max=60, fee_max_minor=1_000,
                     changes_max=99)


def _request(kind: ChangeKind, size: int, state: LoanState) -> ChangeRequest:
    future = [r.due_date for r in state.installments if r.due_date >= state.open_date]
    first = (future[0] if future else state.open_date) + timedelta(days=3 * size)
    return {
        ChangeKind.CONVERSION: ChangeRequest(kind, count=size, frequency=Frequency.MONTHLY),
        ChangeKind.DEFERRAL: ChangeRequest(kind, count=size,
                                           holiday_interest=list(HolidayInterest)[size % 3]),
        ChangeKind.EXTENSION: ChangeRequest(kind, count=size, days=10 * size,
                                            fee_minor=100 * (size - 1)),
        ChangeKind.REAMORTISATION: ChangeRequest(kind),
        ChangeKind.REAGEING: ChangeRequest(kind, count=size + 1,
                                           frequency=state.rules.frequency),
        ChangeKind.RATE_REDUCTION: ChangeRequest(
            kind, annual_rate=(state.rules.annual_rate / 2).quantize(Decimal("0.000001"))),
        ChangeKind.DUE_DATE_CHANGE: ChangeRequest(kind, first_due=first),
        ChangeKind.FEE_WAIVER: ChangeRequest(kind),
        ChangeKind.PENALTY_WAIVER: ChangeRequest(kind, amount_minor=None),
    }[kind]


steps = st.lists(st.tuples(st.one_of(st.none(), st.integers(1, 1_200)),
                           st.one_of(st.none(), st.none(), st.sampled_from(list(ChangeKind))),
                           st.integers(1, 3)), min_size=15, max_size=120)


def _check_disclosure(state: LoanState) -> None:
    disclosure = disclose(state)
    later = [r for r in state.installments if r.due_date > state.open_date]
    unpaid = [r.principal_due - r.principal_paid + r.interest_due - r.interest_paid
              + r.fee_due - r.fee_paid for r in later]
    assert disclosure.financed_minor == sum(
        r.principal_due - r.principal_paid + r.interest_recognized - r.interest_paid
        + r.fee_recognized - r.fee_paid for r in later)
    assert disclosure.total_repayable_minor == sum(unpaid)
    if any(unpaid):
        assert disclosure.maturity_date == max(r.due_date for r, u in zip(later, unpaid,
                                                                          strict=True) if u)
    cost = disclosure.total_repayable_minor - disclosure.financed_minor
    assert disclosure.total_cost_minor == cost
    assert (disclosure.annual_rate_disclosed > 0) == (cost > 0 and disclosure.financed_minor > 0)


def _apply_change(state: LoanState, kind: ChangeKind, size: int,
                  events: list[ev.LoanEvent]) -> tuple[LoanState, int]:
    before = state
    try:
        result = restructure(state, _request(kind, size, state), POLICY, ChangeHistory(),
                             state.open_date)
    except Refused:
        return before, 0
    capitalised = sum(e.amount_minor for e in result.events
                      if isinstance(e, rev.InterestCapitalised | rev.FeeCapitalised))
    assert result.after.principal_outstanding == before.principal_outstanding + capitalised
    assert result.before is before
    _check_disclosure(result.after)
    events += result.events
    return result.after, capitalised


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(loan=loans(), plan=steps)
def test_changes_conserve_money_and_match_the_journal(
    loan: tuple[LoanTerms, ServicingRules], plan: list[tuple[int | None, ChangeKind | None, int]]
) -> None:
    terms, rules = loan
    rules = replace(rules, charge_off_days=max(rules.charge_off_days, 30))
    schedule = build_schedule(terms)
    state, events = open_loan(1, START, schedule, rules)
    paid_in = capitalised = 0
    for per_mille, kind, size in plan:
        if kind is not None and state.status is LoanStatus.ACTIVE:
            state, added = _apply_change(state, kind, size, events)
            capitalised += added
        on = state.open_date
        if per_mille is not None and state.status is not LoanStatus.CLOSED:
            owed = (payoff_amount(state, on).total_minor
                    if state.status is LoanStatus.ACTIVE else 10_000)
            amount = max(1, owed * per_mille // 1_000)
            state, _, new = apply_payment(state, 1, amount, on)
            paid_in += amount
            events += new
        state, new = close_day(state, on)
        events += new
        _check_state(state, schedule.principal_minor + capitalised)
    balance = _balances(events)
    assert sum(balance.values()) == 0
    assert balance[Account.CASH] == paid_in - schedule.disbursed_minor
    assert balance[Account.PRINCIPAL_RECEIVABLE] == state.principal_outstanding
    assert balance[Account.INTEREST_RECEIVABLE] == state.interest_receivable
    assert balance[Account.FEE_RECEIVABLE] == state.fee_receivable
    assert balance[Account.PENALTY_RECEIVABLE] == state.penalty_receivable
    assert -balance[Account.SUSPENSE] == state.excess_paid
    allocated = [e for e in events if isinstance(e, ev.PaymentAllocated)]
    repaid = sum(r.principal_paid for r in state.installments)
    written_off = sum(e.principal_minor for e in events if isinstance(e, ev.LoanChargedOff))
    assert repaid == sum(e.principal_minor for e in allocated)
    assert repaid + state.principal_outstanding + written_off == (
        schedule.principal_minor + capitalised)


@settings(max_examples=60, deadline=None)
@given(loan=loans(), kind=st.sampled_from(list(ChangeKind)), size=st.integers(1, 3))
def test_closed_or_charged_off_loans_are_refused_by_name(
    loan: tuple[LoanTerms, ServicingRules], kind: ChangeKind, size: int
) -> None:
    terms, rules = loan
    state, _ = open_loan(1, START, build_schedule(terms), rules)
    for status in (LoanStatus.CLOSED, LoanStatus.CHARGED_OFF):
        dead = replace(state, status=status)
        try:
            restructure(dead, _request(kind, size, dead), POLICY, ChangeHistory(), dead.open_date)
        except Refused as refused:
            assert [p.code for p in refused.problems] == ["restructure.status"]
            assert status.value in refused.problems[0].message
        else:
            raise AssertionError("a change on a dead loan was accepted")
