"""The set-based SQL close of business equals the pure per-loan reference, day by day.

A seeded portfolio of every product is booked through the service; each day random
payments (partial, exact, large prepayments, payoffs, nothing) are posted through the
service and mirrored on an in-memory reference state; then close of business runs in SQL
and ``close_day`` runs on the reference. After every day the stored loans must equal the
reference exactly, and every loan's journal must equal the transfers of its events.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta

from lendsafe.adapters.db.repository import load_loan, servicing_columns
from lendsafe.domain.lending.loan import LoanState, LoanStatus, close_day
from lendsafe.domain.lending.payments import apply_payment, payoff_amount
from lendsafe.domain.lending.product import Term, TermUnit
from lendsafe.services.lending import LendingService
from tests.servicing_helpers import journal_by_loan, posted

REQUESTS = [
    ("cn-bullet", 150_000, Term(7, TermUnit.DAYS)),
    ("cn-bullet", 500_000, Term(30, TermUnit.DAYS)),
    ("cn-annuity", 1_200_000, Term(3, TermUnit.MONTHS)),
    ("cn-annuity", 3_333_300, Term(6, TermUnit.MONTHS)),
    ("cn-equal-principal", 1_000_000, Term(4, TermUnit.MONTHS)),
    ("cn-interest-only", 800_000, Term(3, TermUnit.MONTHS)),
    ("cn-weekly", 300_000, Term(8, TermUnit.WEEKS)),
    ("cn-biweekly", 900_000, Term(12, TermUnit.WEEKS)),
    ("us-payday", 30_000, Term(14, TermUnit.DAYS)),
]


def _comparable(state: LoanState) -> dict[str, object]:
    return {**servicing_columns(state), "rows": state.installments}


def _random_payment(rng: random.Random, state: LoanState) -> int:
    if state.loan_id % 5 == 0 and state.status is LoanStatus.ACTIVE:
        return 0  # a defaulter: pays nothing until charged off, then sometimes recovers
    if state.status is LoanStatus.CLOSED or (state.status is LoanStatus.CHARGED_OFF and (
        rng.random() < 0.9
    )):
        return 0
    if state.status is LoanStatus.CHARGED_OFF:
        return rng.randint(1, 5_000)
    payoff = payoff_amount(state, state.open_date).total_minor
    choice = rng.random()
    if choice < 0.80:
        return 0
    if choice < 0.90:
        return rng.randint(1, max(1, payoff // 4))
    if choice < 0.95:
        return rng.randint(payoff // 2, payoff)
    return payoff + rng.randint(0, 500)


def test_sql_close_of_business_equals_reference(service: LendingService) -> None:
    rng = random.Random(20261129)
    loan_ids = [service.book(f"b{i}", p, a, term) for i, (p, a, term) in
                enumerate(REQUESTS * 3)]
    reference: dict[int, LoanState] = {}
    expected: dict[int, Counter[tuple[str, str, str, int]]] = {i: Counter() for i in loan_ids}
    with service.engine.connect() as connection:
        for loan_id in loan_ids:
            reference[loan_id] = load_loan(connection, loan_id).state
    for loan_id, counter in journal_by_loan(service.engine).items():
        expected[loan_id] += counter  # disbursement postings
    on = service.open_date()
    for day in range(190):
        for loan_id in loan_ids:
            amount = _random_payment(rng, reference[loan_id])
            if amount <= 0:
                continue
            service.pay(loan_id, amount, f"k-{loan_id}-{day}")
            new_state, _, events = apply_payment(reference[loan_id], 0, amount, on)
            reference[loan_id] = new_state
            expected[loan_id] += posted(events)
        service.close_business(on)
        for loan_id in loan_ids:
            reference[loan_id], events = close_day(reference[loan_id], on)
            expected[loan_id] += posted(events)
        with service.engine.connect() as connection:
            for loan_id in loan_ids:
                stored = load_loan(connection, loan_id).state
                assert _comparable(stored) == _comparable(reference[loan_id]), (loan_id, on)
        on += timedelta(days=1)
    assert journal_by_loan(service.engine) == expected
    statuses = Counter(state.status for state in reference.values())
    assert statuses[LoanStatus.CLOSED] > 0 and statuses[LoanStatus.CHARGED_OFF] > 0, statuses
