"""Concurrent payments on one loan, some retried with the same idempotency key.

Each key is posted once, every retry gets the first answer back, and the loan ends exactly
where the same payments applied one after another (in commit order) would leave it.
"""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import pytest
from sqlalchemy import func, select

from lendsafe.adapters.db import tables as t
from lendsafe.adapters.db.repository import load_loan, trial_balance
from lendsafe.domain.lending.payments import apply_payment
from lendsafe.domain.lending.product import parse_term
from lendsafe.services.lending import Conflict, LendingService


def test_concurrent_payments_with_retries(service: LendingService) -> None:
    loan_id = service.book("c1", "cn-annuity", 5_000_000, parse_term("12m"))
    service.close_business(date(2026, 3, 15))
    with service.engine.connect() as connection:
        start_state = load_loan(connection, loan_id).state
    rng = random.Random(7)
    keys = [f"pay-{i:02d}" for i in range(20)]
    amounts = {key: rng.randint(1_000, 40_000) for key in keys}
    # 20 distinct payments, 12 of them sent twice or three times, all at once
    calls = keys + rng.sample(keys, 8) + rng.sample(keys, 4)
    rng.shuffle(calls)

    def send(key: str) -> dict[str, object]:
        return service.pay(loan_id, amounts[key], key)

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(send, calls))
    first: dict[str, dict[str, object]] = {}
    for key, answer in zip(calls, answers, strict=True):
        stripped = {k: v for k, v in answer.items() if k != "replayed"}
        assert first.setdefault(key, stripped) == stripped  # every retry got the same answer
    assert sum(1 for a in answers if not a["replayed"]) == 20
    with service.engine.connect() as connection:
        rows = connection.execute(select(t.payments).order_by(t.payments.c.id)).all()
        stored = load_loan(connection, loan_id).state
        balances = trial_balance(connection, loan_id)
        assert connection.execute(select(func.count()).select_from(t.payments)).scalar() == 20
    assert sorted(r.idempotency_key for r in rows) == keys
    reference = start_state
    for row in rows:  # the same payments, one after another, in commit order
        reference, allocation, _ = apply_payment(reference, row.id, row.amount_minor,
                                                 reference.open_date)
        assert allocation.principal_minor == row.principal_minor
    assert stored == reference
    assert balances["1000"] == sum(amounts.values()) - 5_000_000
    assert balances["1100"] == stored.principal_outstanding


def test_same_key_for_another_amount_is_a_conflict(service: LendingService) -> None:
    loan_id = service.book("c2", "cn-bullet", 100_000, parse_term("14d"))
    service.pay(loan_id, 10_000, "k-1")
    with pytest.raises(Conflict, match="already used"):
        service.pay(loan_id, 20_000, "k-1")
    with service.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(t.payments)).scalar() == 1


def test_future_payoff_projection_matches_paying_on_that_day(service: LendingService) -> None:
    loan_id = service.book("c3", "cn-annuity", 1_200_000, parse_term("6m"))
    projected = service.payoff(loan_id, date(2026, 5, 20))  # two instalments unpaid by then
    assert projected["penalty"] != "0.00"
    service.close_business(date(2026, 5, 19))
    actual = service.payoff(loan_id)
    assert actual == projected
    paid = service.pay(loan_id, int(actual["total"].replace(".", "")), "payoff-1")
    assert paid["loan_status"] == "closed"
    with pytest.raises(Exception, match="today"):
        service.payoff(loan_id, date(2026, 3, 1))


def test_no_rollover_of_a_single_period_loan(service: LendingService) -> None:
    first = service.book("c4", "cn-bullet", 100_000, parse_term("14d"))
    with pytest.raises(Exception, match="single_period_rollover"):
        service.book("c4", "cn-bullet", 100_000, parse_term("14d"))
    service.pay(first, 200_000, "repay-first")  # repaid (the excess is owed back)
    assert service.book("c4", "cn-bullet", 100_000, parse_term("14d")) > first
