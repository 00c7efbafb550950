"""After each kind of change, the set-based SQL close of business equals the pure
reference (``close_day``) day by day, the stored state equals the computed one, the old
schedule is kept, and the journal equals the transfers of every event."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

import lendsafe.domain.ledger.restructure_posting  # noqa: F401
from lendsafe.adapters.db import restructure_tables as rt
from lendsafe.adapters.db.repository import load_loan, servicing_columns
from lendsafe.domain.calendar import Frequency
from lendsafe.domain.lending.loan import LoanState, close_day
from lendsafe.domain.lending.product import Term, TermUnit
from lendsafe.domain.lending.restructure import (
    ChangeKind,
    ChangeRequest,
    HolidayInterest,
)
from lendsafe.domain.problems import Refused
from lendsafe.services.lending import LendingService
from lendsafe.services.restructuring import RestructuringService
from tests.servicing_helpers import journal_by_loan, open_policy, posted

OPEN_POLICY = open_policy()
CASES = [
    ("cn-bullet", 300_000, Term(30, TermUnit.DAYS),
     ChangeRequest(ChangeKind.CONVERSION, count=3, frequency=Frequency.MONTHLY)),
    ("cn-bullet", 200_000, Term(30, TermUnit.DAYS),
     ChangeRequest(ChangeKind.EXTENSION, days=20, fee_minor=365)),
    ("cn-annuity", 1_200_000, Term(6, TermUnit.MONTHS),
     ChangeRequest(ChangeKind.DEFERRAL, count=2, holiday_interest=HolidayInterest.CAPITALISED)),
    ("cn-equal-principal", 1_000_000, Term(6, TermUnit.MONTHS),
     ChangeRequest(ChangeKind.DEFERRAL, count=1, holiday_interest=HolidayInterest.ACCRUED)),
    ("cn-interest-only", 800_000, Term(6, TermUnit.MONTHS),
     ChangeRequest(ChangeKind.DEFERRAL, count=2, holiday_interest=HolidayInterest.WAIVED)),
    ("cn-weekly", 300_000, Term(12, TermUnit.WEEKS), ChangeRequest(ChangeKind.EXTENSION, count=2)),
    ("cn-annuity", 1_500_000, Term(6, TermUnit.MONTHS), ChangeRequest(ChangeKind.REAMORTISATION)),
    ("cn-annuity", 900_000, Term(6, TermUnit.MONTHS),
     ChangeRequest(ChangeKind.REAGEING, count=6, frequency=Frequency.MONTHLY)),
    ("cn-annuity", 1_000_000, Term(6, TermUnit.MONTHS),
     ChangeRequest(ChangeKind.RATE_REDUCTION, annual_rate=Decimal("0.09"))),
    ("cn-equal-principal", 1_200_000, Term(6, TermUnit.MONTHS),
     ChangeRequest(ChangeKind.DUE_DATE_CHANGE, first_due=date(2026, 4, 20))),
    ("cn-biweekly", 900_000, Term(12, TermUnit.WEEKS), ChangeRequest(ChangeKind.FEE_WAIVER)),
    ("cn-annuity", 1_100_000, Term(6, TermUnit.MONTHS), ChangeRequest(ChangeKind.PENALTY_WAIVER)),
]


def _comparable(state: LoanState) -> dict[str, object]:
    return {**servicing_columns(state), "rows": state.installments, "rules": state.rules}


def test_close_of_business_after_every_kind_of_change(service: LendingService) -> None:
    changes = RestructuringService(service, OPEN_POLICY)
    loans = [service.book(f"r{i}", p, a, term) for i, (p, a, term, _) in enumerate(CASES)]
    on = service.open_date()
    service.close_business(on + timedelta(days=39))
    with service.engine.connect() as connection:
        reference = {i: load_loan(connection, i).state for i in loans}
    expected = journal_by_loan(service.engine)
    for loan_id, (*_, request) in zip(loans, CASES, strict=True):
        with service.engine.begin() as connection:
            record, result = changes.compute(connection, loan_id, request, lock=True)
            changes.apply(connection, record, result, "test")
        reference[loan_id] = result.after
        expected[loan_id] += posted(list(result.events))
        with service.engine.connect() as connection:
            assert _comparable(load_loan(connection, loan_id).state) == _comparable(result.after)
    on = service.open_date()
    for _ in range(150):
        service.close_business(on)
        for loan_id in loans:
            reference[loan_id], events = close_day(reference[loan_id], on)
            expected[loan_id] += posted(list(events))
        with service.engine.connect() as connection:
            for loan_id in loans:
                stored = load_loan(connection, loan_id).state
                assert _comparable(stored) == _comparable(reference[loan_id]), (loan_id, on)
        on += timedelta(days=1)
    assert journal_by_loan(service.engine) == expected
    with service.engine.connect() as connection:
        kept = connection.execute(select(func.count(func.distinct(
            rt.schedule_versions.c.loan_id)))).scalar_one()
        flags = connection.execute(select(func.count()).select_from(rt.credit_flags)).scalar()
    assert kept == len(CASES) and flags == len(CASES)  # the open policy flags every kind


def test_refusals_name_the_rule_and_change_nothing(service: LendingService) -> None:
    changes = RestructuringService(service)  # the packaged policy
    loan_id = service.book("z", "cn-annuity", 1_200_000, Term(6, TermUnit.MONTHS))
    with service.engine.connect() as connection:
        before = _comparable(load_loan(connection, loan_id).state)
    with pytest.raises(Refused) as refused:  # current loans are not re-aged
        changes.submit(loan_id, ChangeRequest(ChangeKind.REAGEING, count=6), "test")
    assert refused.value.problems[0].code == "restructure.re-ageing.bucket"
    with pytest.raises(Refused) as refused:
        changes.submit(loan_id, ChangeRequest(ChangeKind.DEFERRAL, count=9), "test")
    assert refused.value.problems[0].code == "restructure.deferral.count_max"
    with pytest.raises(Refused) as refused:  # needs approval and no control services here
        changes.submit(loan_id, ChangeRequest(ChangeKind.DEFERRAL, count=2), "test")
    assert refused.value.problems[0].code == "restructure.approval"
    service.pay(loan_id, 2_000_000, "payoff-z")
    with pytest.raises(Refused) as refused:
        changes.submit(loan_id, ChangeRequest(ChangeKind.EXTENSION, count=1), "test")
    assert refused.value.problems[0].code == "restructure.status"
    with service.engine.connect() as connection:
        after = load_loan(connection, loan_id).state
        assert connection.execute(select(func.count()).select_from(
            rt.restructures)).scalar() == 0
    assert after.status.value == "closed" and before["status"] == "active"
