"""Manual payment reversal (maker-checker ``payment.reversal``) restores the loan by replay.

Each scenario books two identical loans on the same day: loan A receives every payment,
loan B every payment but one. After the days have run, the extra payment on A is reversed
through maker-checker; A must then equal B (the independent second computation: the
set-based close of business ran B through the same days) in its balances, instalments,
status and days past due, and in its journal balance per account. Every receivable equals
its journal balance and the journal still verifies. SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from lendsafe.adapters.db import control_tables as ct
from lendsafe.adapters.db import tables as t
from lendsafe.adapters.db.repository import load_loan, servicing_columns, trial_balance
from lendsafe.bootstrap import Container, build
from lendsafe.config import Settings
from lendsafe.domain.lending.loan import LoanState
from lendsafe.domain.lending.product import parse_term
from lendsafe.domain.problems import Refused
from lendsafe.services.access import Forbidden, Principal, role_catalogue
from lendsafe.services.lending import LendingService

START = date(2026, 3, 2)


def settings_with(tmp_path: Path, database_url: str) -> Settings:
    """Settings with every key and directory under ``tmp_path``, on ``database_url``."""
    master = base64.b64encode(b"k" * 32).decode()
    return Settings.from_env({"LENDSAFE_DATA_DIR": str(tmp_path),
                              "LENDSAFE_MASTER_KEYS": f"k1:{master}",
                              "LENDSAFE_DATABASE_URL": database_url})


@pytest.fixture
def container(tmp_path: Path, database_url: str) -> Iterator[Container]:
    """Every service wired on a fresh database (SQLite and PostgreSQL), opened on START."""
    built = build(settings_with(tmp_path, database_url))
    built.lending.initialise(START)
    yield built
    built.engine.dispose()


def staff(*roles: str, name: str) -> Principal:
    """A staff principal holding ``roles``."""
    return Principal(f"user:{name}", roles[0], roles=frozenset(roles),
                     permissions=role_catalogue().permissions_of(roles))


MAKER = staff("operations", name="olga")
CHECKER = staff("finance", name="fred")


@dataclass(frozen=True)
class Scenario:
    """Two loans of ``product``; payments as (day after booking, amount minor)."""

    product: str
    amount_minor: int
    term: str
    payments: tuple[tuple[int, int], ...]
    reversed_index: int
    last_day: int
    statuses: tuple[str, str] = ("active", "active")  # loan A before and after the reversal


SCENARIOS = {
    # a prepayment on the day of booking, later partial payments, arrears and penalty
    "bullet-prepayment": Scenario("cn-bullet", 100_000, "14d",
                                  ((0, 5_000), (5, 20_000), (20, 30_000)), 0, 40),
    # a payment between due dates; a later instalment payment is allocated again
    "annuity-middle": Scenario("cn-annuity", 1_200_000, "3m",
                               ((10, 100_000), (31, 300_000), (45, 200_000)), 1, 80),
    # the payment that closed the loan (with an overpayment): the loan reopens and accrues
    "bullet-payoff": Scenario("cn-bullet", 150_000, "7d", ((3, 200_000),), 0, 30,
                              ("closed", "active")),
    # without the first instalment's payment the loan charges off earlier and the later
    # payment becomes a recovery
    "weekly-charge-off": Scenario("cn-weekly", 300_000, "8w",
                                  ((7, 40_000), (60, 10_000), (100, 5_000)), 0, 110,
                                  ("charged_off", "charged_off")),
    # a deducted-fee USD loan: the recovery after charge-off is the reversed payment
    "payday-recovery": Scenario("us-payday", 30_000, "14d",
                                ((3, 1_000), (140, 2_000)), 1, 145,
                                ("charged_off", "charged_off")),
}


def _close_through(lending: LendingService, until: date) -> None:
    if until >= lending.open_date():
        lending.close_business(until)


def _run(lending: LendingService, scenario: Scenario, tag: str) -> tuple[int, int, int]:
    """Book A and B, pay them, run the days; returns (A, B, the payment to reverse)."""
    term = parse_term(scenario.term)
    start = lending.open_date()
    loan_a = lending.book(f"a-{tag}", scenario.product, scenario.amount_minor, term)
    loan_b = lending.book(f"b-{tag}", scenario.product, scenario.amount_minor, term)
    reversed_id = 0
    for index, (day, amount) in enumerate(scenario.payments):
        _close_through(lending, start + timedelta(days=day - 1))
        paid = lending.pay(loan_a, amount, f"a-{tag}-{index}")
        if index == scenario.reversed_index:
            reversed_id = int(paid["payment_id"])
        else:
            lending.pay(loan_b, amount, f"b-{tag}-{index}")
    _close_through(lending, start + timedelta(days=scenario.last_day))
    return loan_a, loan_b, reversed_id


def comparable(state: LoanState) -> dict[str, Any]:
    """A loan as stored (servicing columns and instalments), without its id."""
    return {**servicing_columns(state), "rows": state.installments}


def balances(connection: Any, loan_id: int) -> dict[str, int]:
    """A loan's journal balance per account, without the accounts that net to zero."""
    return {a: v for a, v in trial_balance(connection, loan_id).items() if v}


def assert_receivables_equal_journal(container: Container, loan_id: int) -> None:
    """Every receivable (and the suspense and recoveries) equals its journal balance."""
    with container.engine.connect() as connection:
        state = load_loan(connection, loan_id).state
        row = connection.execute(select(t.loans).where(t.loans.c.id == loan_id)).one()
        balances = trial_balance(connection, loan_id)
    expected = {"1100": state.principal_outstanding, "1110": state.interest_receivable,
                "1120": state.fee_receivable, "1130": state.penalty_receivable,
                "2100": -state.excess_paid, "4100": -state.recovered}
    assert {a: balances.get(a, 0) for a in expected} == expected
    assert (row.principal_outstanding_minor, row.interest_receivable_minor,
            row.fee_receivable_minor) == (expected["1100"], expected["1110"], expected["1120"])


def assert_journal_balances(container: Container) -> None:
    """Debits equal credits over the whole journal, and the verifiable log verifies."""
    with container.engine.connect() as connection:
        assert sum(trial_balance(connection).values()) == 0
    assert container.lending.status()["trial_balance"]["balanced"]
    assert container.ledger is not None and container.ledger.verify(record=False).ok


def reverse(container: Container, payment_id: int) -> dict[str, Any]:
    """Propose and approve a reversal (two people)."""
    action = container.security.propose(MAKER, "payment.reversal", f"payment:{payment_id}",
                                        {}, "the bank returned the payment")
    assert "refused" not in action["will_change"], action["will_change"]
    decided = container.security.decide(CHECKER, action["id"], approve=True,
                                        reason="bank statement checked")
    assert decided["status"] == "approved"
    return dict(decided["result"])


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_a_reversed_loan_equals_one_that_never_got_the_payment(container: Container,
                                                              name: str) -> None:
    scenario = SCENARIOS[name]
    loan_a, loan_b, payment_id = _run(container.lending, scenario, name)
    result = reverse(container, payment_id)
    assert result["payment_id"] == payment_id and result["loan_id"] == loan_a
    assert (result["before"]["status"], result["after"]["status"]) == scenario.statuses
    with container.engine.connect() as connection:
        state_a = load_loan(connection, loan_a).state
        state_b = load_loan(connection, loan_b).state
        assert comparable(state_a) == comparable(state_b)
        assert balances(connection, loan_a) == balances(connection, loan_b)
    assert_receivables_equal_journal(container, loan_a)
    assert_journal_balances(container)
    # close of business carries on from the restored loan exactly as from B
    _close_through(container.lending, container.lending.open_date() + timedelta(days=10))
    with container.engine.connect() as connection:
        assert comparable(load_loan(connection, loan_a).state) == comparable(
            load_loan(connection, loan_b).state)
    assert_receivables_equal_journal(container, loan_a)


def test_a_later_payment_becomes_a_recovery_when_the_loan_charges_off_earlier(
        container: Container) -> None:
    loan_a, _, payment_id = _run(container.lending, SCENARIOS["weekly-charge-off"], "r")
    with container.engine.connect() as connection:
        last = connection.execute(select(t.payments).where(t.payments.c.loan_id == loan_a)
                                  .order_by(t.payments.c.id.desc())).first()
    assert last is not None and last.recovery_minor == 0
    result = reverse(container, payment_id)
    assert last.id in result["reallocated_payments"]
    with container.engine.connect() as connection:
        now = connection.execute(select(t.payments).where(t.payments.c.id == last.id)).one()
        loan = connection.execute(select(t.loans).where(t.loans.c.id == loan_a)).one()
    assert (now.recovery_minor, now.principal_minor, now.interest_minor) == (
        last.amount_minor, 0, 0)
    assert loan.status == "charged_off" and loan.charged_off_on < date(2026, 6, 10)


def test_the_reversal_is_posted_audited_and_marked(container: Container) -> None:
    loan_a, _, payment_id = _run(container.lending, SCENARIOS["annuity-middle"], "m")
    result = reverse(container, payment_id)
    with container.engine.connect() as connection:
        original = connection.execute(select(t.journal).where(
            t.journal.c.reference == f"payment:{payment_id}").order_by(t.journal.c.id)).all()
        mirrored = connection.execute(select(t.journal).where(
            t.journal.c.reference == f"reversal:payment:{payment_id}")
            .order_by(t.journal.c.id)).all()
        audit = connection.execute(select(ct.audit_records).where(
            ct.audit_records.c.action == "loan.reverse_payment")).all()
    assert [(r.debit_account, r.credit_account, r.amount_minor) for r in mirrored] == [
        (r.credit_account, r.debit_account, r.amount_minor) for r in original]
    assert result["reallocated_payments"], "the later instalment payment was split again"
    assert len(audit) == 1 and audit[0].target == f"payment:{payment_id}"
    assert "PaymentReversed" in audit[0].after
    payments = container.lending.loan_view(loan_a)["payments"]
    assert [p["reversed"] for p in payments] == [p["payment_id"] == payment_id
                                                 for p in payments]


def test_a_second_reversal_is_refused_by_name(container: Container) -> None:
    _, _, payment_id = _run(container.lending, SCENARIOS["bullet-prepayment"], "twice")
    reverse(container, payment_id)
    with container.engine.connect() as connection:
        entries = connection.execute(select(t.journal.c.id)).all()
    action = container.security.propose(MAKER, "payment.reversal", f"payment:{payment_id}",
                                        {}, "again")
    assert action["will_change"]["refused"][0]["code"] == "payment.already_reversed"
    with pytest.raises(Refused) as refused:
        container.security.decide(CHECKER, action["id"], approve=True)
    assert [p.code for p in refused.value.problems] == ["payment.already_reversed"]
    with pytest.raises(Refused, match="already reversed"):
        container.lending.reverse_payment(payment_id)
    with container.engine.connect() as connection:
        assert connection.execute(select(t.journal.c.id)).all() == entries
    assert container.security.show(action["id"], CHECKER)["status"] == "pending"


def test_a_maker_cannot_approve_their_own_reversal(container: Container) -> None:
    _, _, payment_id = _run(container.lending, SCENARIOS["bullet-payoff"], "own")
    both = staff("operations", name="otto")
    action = container.security.propose(both, "payment.reversal", f"payment:{payment_id}",
                                        {}, "mine")
    with pytest.raises(Forbidden):
        container.security.decide(both, action["id"], approve=True)
    with pytest.raises(Forbidden, match="maker"):
        container.security.decide(staff("finance", name="otto"), action["id"], approve=True)
    with container.engine.connect() as connection:
        assert connection.execute(select(t.journal.c.id).where(
            t.journal.c.reference.like("reversal:%"))).first() is None
    assert container.security.show(action["id"], CHECKER)["status"] == "pending"


def test_two_reversals_on_one_loan_equal_a_loan_that_got_neither(container: Container) -> None:
    lending = container.lending
    term = parse_term("3m")
    loan_a = lending.book("a-two", "cn-annuity", 1_200_000, term)
    loan_b = lending.book("b-two", "cn-annuity", 1_200_000, term)
    reversed_ids = []
    for day, amount, both in ((5, 80_000, False), (31, 420_000, True), (40, 90_000, False),
                              (62, 300_000, True)):
        _close_through(lending, START + timedelta(days=day - 1))
        paid = lending.pay(loan_a, amount, f"a-two-{day}")
        if both:
            lending.pay(loan_b, amount, f"b-two-{day}")
        else:
            reversed_ids.append(int(paid["payment_id"]))
    _close_through(lending, START + timedelta(days=75))
    reverse(container, reversed_ids[1])  # the later one first
    _close_through(lending, START + timedelta(days=80))
    reverse(container, reversed_ids[0])
    with container.engine.connect() as connection:
        assert comparable(load_loan(connection, loan_a).state) == comparable(
            load_loan(connection, loan_b).state)
        assert balances(connection, loan_a) == balances(connection, loan_b)
    assert_receivables_equal_journal(container, loan_a)
    assert_journal_balances(container)


@pytest.mark.parametrize("name", ["annuity-middle", "weekly-charge-off"])
def test_a_loan_booked_before_the_term_was_stored_is_rebuilt_from_its_maturity(
        container: Container, name: str) -> None:
    loan_a, loan_b, payment_id = _run(container.lending, SCENARIOS[name], f"old-{name}")
    with container.engine.begin() as connection:  # as rows written before the column existed
        connection.execute(t.loans.update().where(t.loans.c.id == loan_a).values(term=None))
    reverse(container, payment_id)
    with container.engine.connect() as connection:
        assert load_loan(connection, loan_a).term is None
        assert comparable(load_loan(connection, loan_a).state) == comparable(
            load_loan(connection, loan_b).state)
    assert_receivables_equal_journal(container, loan_a)
