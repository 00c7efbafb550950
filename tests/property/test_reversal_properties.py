"""Hypothesis property of payment reversal: for random products and random sequences of
payments and close-of-business days, reversing one payment leaves the loan exactly as a
twin loan booked the same day that never received it (and ran through the same days in the
set-based close of business), with the same journal balance per account, and every
receivable equal to its journal balance. SQLite; each example books a new pair of loans on
the same database, so the business date moves on from example to example."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from lendsafe.adapters.db import tables as t
from lendsafe.adapters.db.engine import make_engine, upgrade
from lendsafe.adapters.db.repository import load_loan, servicing_columns, trial_balance
from lendsafe.domain.lending.product import parse_term
from lendsafe.services.catalogue import Catalogue
from lendsafe.services.lending import LendingService

PRODUCTS = [("cn-bullet", 100_000, "14d"), ("cn-annuity", 1_200_000, "3m"),
            ("cn-weekly", 300_000, "8w"), ("us-payday", 30_000, "14d")]
# each payment: (days of close of business before it, per-mille of the principal)
BORROWERS = itertools.count(1)
PAYMENTS = st.lists(st.tuples(st.integers(0, 12), st.integers(1, 1_300)), min_size=1,
                    max_size=4)


@pytest.fixture
def lending(tmp_path: Path) -> Iterator[LendingService]:
    """A lending service on a fresh SQLite database (one chunk per close of business)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'reversal.sqlite'}")
    upgrade(engine)
    service = LendingService(engine, Catalogue.load())
    service.initialise(date(2026, 3, 2))
    yield service
    engine.dispose()


def _status(lending: LendingService, loan_id: int) -> str:
    return str(lending.loan_view(loan_id)["status"])


def _pay_both(lending: LendingService, loans: tuple[int, int], payments: list[tuple[int, int]],
              skipped: int, principal: int) -> int | None:
    """Pay A everything and B everything but payment ``skipped``; the id of A's skipped one."""
    loan_a, loan_b = loans
    reversed_id = None
    for index, (days, per_mille) in enumerate(payments):
        if days:
            lending.close_business(lending.open_date() + timedelta(days=days - 1))
        if _status(lending, loan_a) == "closed":
            break
        amount = max(1, principal * per_mille // 1_000)
        paid = lending.pay(loan_a, amount, f"a-{loan_a}-{index}")
        if index == skipped:
            reversed_id = int(paid["payment_id"])
        else:
            lending.pay(loan_b, amount, f"b-{loan_b}-{index}")
    return reversed_id


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(product=st.sampled_from(PRODUCTS), payments=PAYMENTS, pick=st.integers(0, 3),
       tail=st.integers(0, 15))
def test_reversing_a_payment_equals_never_receiving_it(
        lending: LendingService, product: tuple[str, int, str],
        payments: list[tuple[int, int]], pick: int, tail: int) -> None:
    product_id, principal, term = product
    skipped = pick % len(payments)
    pair = next(BORROWERS)
    loans = (lending.book(f"a-{pair}", product_id, principal, parse_term(term)),
             lending.book(f"b-{pair}", product_id, principal, parse_term(term)))
    reversed_id = _pay_both(lending, loans, payments, skipped, principal)
    assume(reversed_id is not None)  # loan A closed before the payment to reverse
    assert reversed_id is not None
    if tail:
        lending.close_business(lending.open_date() + timedelta(days=tail - 1))
    lending.reverse_payment(reversed_id)
    with lending.engine.connect() as connection:
        state_a, state_b = (load_loan(connection, i).state for i in loans)
        assert servicing_columns(state_a) == servicing_columns(state_b)
        assert state_a.installments == state_b.installments
        balance_a, balance_b = ({a: v for a, v in trial_balance(connection, i).items() if v}
                                for i in loans)
        assert balance_a == balance_b
        assert sum(trial_balance(connection).values()) == 0
        row = connection.execute(select(t.loans).where(t.loans.c.id == loans[0])).one()
    assert (balance_a.get("1100", 0), balance_a.get("1110", 0), balance_a.get("1120", 0),
            balance_a.get("1130", 0)) == (
        state_a.principal_outstanding, state_a.interest_receivable, state_a.fee_receivable,
        state_a.penalty_receivable)
    assert row.principal_outstanding_minor == state_a.principal_outstanding
