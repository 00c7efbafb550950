"""Write-off overrides and product changes go through lending use cases (maker-checker).

A write-off charges the loan off on the open business date through
``LendingService.write_off``: the loan, its ``write_off:loan:ID`` transfers and the audit
record commit together, every receivable equals its journal balance, and a payment reversal
replays the write-off. A product change stores the changed definition in the database (the
product in force) and every later booking, in any process, uses it. SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from lendsafe.adapters.db import control_tables as ct
from lendsafe.adapters.db import tables as t
from lendsafe.adapters.db.repository import load_loan
from lendsafe.bootstrap import Container, build
from lendsafe.domain.lending.product import parse_term
from lendsafe.domain.problems import Refused
from lendsafe.services.access import Forbidden
from tests.integration.test_payment_reversal import (
    MAKER,
    SCENARIOS,
    START,
    _run,
    assert_journal_balances,
    assert_receivables_equal_journal,
    balances,
    comparable,
    reverse,
    settings_with,
    staff,
)
from tests.integration.test_payment_reversal import container as wired

container = wired  # the same fixture: every service on a fresh database, opened on START

RISK = staff("risk_officer", name="rita")


def write_off(container: Container, loan_id: int) -> dict[str, object]:
    """Propose and approve a write-off (two people)."""
    action = container.security.propose(MAKER, "loan.write_off", f"loan:{loan_id}", {},
                                        "fraud confirmed")
    decided = container.security.decide(RISK, action["id"], approve=True, reason="checked")
    assert decided["status"] == "approved"
    return dict(decided["result"])


def test_a_write_off_is_a_lending_use_case(container: Container) -> None:
    lending = container.lending
    loan_id = lending.book("alice", "cn-bullet", 100_000, parse_term("14d"))
    lending.pay(loan_id, 10_000, "p1")
    lending.close_business(START + timedelta(days=25))  # in arrears, penalty accrued
    with container.engine.connect() as connection:
        before = load_loan(connection, loan_id).state
    assert before.penalty_receivable > 0
    on = lending.open_date()
    result = write_off(container, loan_id)
    assert result["written_off_minor"] == {
        "principal": before.principal_outstanding, "interest": before.interest_receivable,
        "fee": before.fee_receivable, "penalty": before.penalty_receivable}
    with container.engine.connect() as connection:
        loan = connection.execute(select(t.loans).where(t.loans.c.id == loan_id)).one()
        rows = connection.execute(select(t.journal).where(
            t.journal.c.reference == f"write_off:loan:{loan_id}")).all()
        audit = connection.execute(select(ct.audit_records).where(
            ct.audit_records.c.action == "loan.write_off")).all()
    assert (loan.status, loan.charged_off_on) == ("charged_off", on)
    assert {(r.kind, r.debit_account, r.business_day) for r in rows} == {
        ("charge_off", "5000", (on - date(1970, 1, 1)).days)}
    assert sum(r.amount_minor for r in rows) == sum(result["written_off_minor"].values())  # type: ignore[union-attr]
    assert len(audit) == 1 and audit[0].target == f"loan:{loan_id}"
    assert "LoanChargedOff" in audit[0].after
    assert_receivables_equal_journal(container, loan_id)
    assert_journal_balances(container)
    lending.close_business(lending.open_date() + timedelta(days=5))  # nothing accrues now
    with container.engine.connect() as connection:
        assert balances(connection, loan_id).get("1130", 0) == 0
    assert_receivables_equal_journal(container, loan_id)


def test_only_an_active_loan_is_written_off(container: Container) -> None:
    lending = container.lending
    loan_id = lending.book("bob", "cn-bullet", 100_000, parse_term("14d"))
    lending.pay(loan_id, 200_000, "payoff")
    action = container.security.propose(MAKER, "loan.write_off", f"loan:{loan_id}", {}, "x")
    with pytest.raises(Refused) as refused:
        container.security.decide(RISK, action["id"], approve=True)
    assert [p.code for p in refused.value.problems] == ["loan.write_off_status"]
    assert lending.loan_view(loan_id)["status"] == "closed"


def test_reversing_a_payment_made_before_a_write_off_replays_the_write_off(
        container: Container) -> None:
    lending = container.lending
    term = parse_term("3m")
    loan_a = lending.book("a", "cn-annuity", 1_200_000, term)
    loan_b = lending.book("b", "cn-annuity", 1_200_000, term)
    lending.close_business(START + timedelta(days=30))
    payment_id = int(lending.pay(loan_a, 150_000, "a1")["payment_id"])
    lending.close_business(START + timedelta(days=50))
    write_off(container, loan_a)
    write_off(container, loan_b)
    lending.pay(loan_a, 7_000, "a2")  # recoveries
    lending.pay(loan_b, 7_000, "b2")
    lending.close_business(START + timedelta(days=55))
    reverse(container, payment_id)
    with container.engine.connect() as connection:
        assert comparable(load_loan(connection, loan_a).state) == comparable(
            load_loan(connection, loan_b).state)
        assert balances(connection, loan_a) == balances(connection, loan_b)
        charged = connection.execute(select(t.loans.c.id, t.loans.c.charged_off_on).where(
            t.loans.c.id.in_([loan_a, loan_b]))).all()
    assert len({on for _, on in charged}) == 1
    assert_receivables_equal_journal(container, loan_a)
    assert_journal_balances(container)


def change_product(container: Container, changes: dict[str, object]) -> dict[str, object]:
    """Propose and approve a change of cn-bullet."""
    action = container.security.propose(MAKER, "product.change", "product:cn-bullet",
                                        {"changes": changes}, "new pricing")
    return dict(container.security.decide(RISK, action["id"], approve=True))


def stored_definition(container: Container) -> dict[str, object]:
    """cn-bullet's definition as stored in the database."""
    with container.engine.connect() as connection:
        text = connection.execute(select(t.products.c.definition).where(
            t.products.c.id == "cn-bullet")).scalar_one()
    return dict(json.loads(text))


def test_a_product_change_is_the_product_in_force_for_every_process(
        container: Container, tmp_path: Path, database_url: str) -> None:
    lending = container.lending
    old_loan = lending.book("early", "cn-bullet", 100_000, parse_term("14d"))
    assert stored_definition(container)["annual_rate"] == "0.18"  # the whole definition
    decided = change_product(container, {"annual_rate": "0.12", "name": "Bullet at 12%"})
    assert decided["result"]["after"]["annual_rate"] == "0.12"  # type: ignore[index]
    assert stored_definition(container)["annual_rate"] == "0.12"
    listed = {p["id"]: p for p in lending.products_in_force()}
    assert listed["cn-bullet"]["name"] == "Bullet at 12%"
    assert lending.catalogue.product("cn-bullet").annual_rate == Decimal("0.12")
    new_loan = lending.book("late", "cn-bullet", 100_000, parse_term("14d"))
    other = build(settings_with(tmp_path / "other", database_url))  # another process
    try:
        assert other.catalogue.product("cn-bullet").annual_rate == Decimal("0.18")  # the file
        third = other.lending.book("third", "cn-bullet", 100_000, parse_term("14d"))
        assert [p["annual_rate"] for p in other.lending.products_in_force()
                if p["id"] == "cn-bullet"] == ["0.12"]
        fresh = build(settings_with(tmp_path / "fourth", database_url))  # what the CLI/API list
        try:
            listing = {p["id"]: p for p in fresh.lending.product_listing()}
            assert (listing["cn-bullet"]["annual_rate"], listing["cn-bullet"]["name"]) == (
                "0.1200", "Bullet at 12%")
        finally:
            fresh.engine.dispose()
    finally:
        other.engine.dispose()
    with container.engine.connect() as connection:
        rates = {i: load_loan(connection, i).state.rules.annual_rate
                 for i in (old_loan, new_loan, third)}
    assert rates == {old_loan: Decimal("0.18"), new_loan: Decimal("0.12"),
                     third: Decimal("0.12")}
    with container.engine.connect() as connection:
        audit = connection.execute(select(ct.audit_records.c.action).where(
            ct.audit_records.c.target == "product:cn-bullet")).scalars().all()
    assert "product.change" in audit


@pytest.mark.parametrize(("changes", "code"), [
    ({"annual_rate": "-0.10"}, "product.invalid"),
    ({"term_min": "3x"}, "product.field"),
    ({"colour": "red"}, "product.field_unknown"),
    ({"id": "other"}, "product.id_fixed"),
])
def test_an_invalid_product_change_is_refused_and_changes_nothing(
        container: Container, changes: dict[str, object], code: str) -> None:
    before = stored_definition(container)
    with pytest.raises(Refused) as refused:
        change_product(container, changes)
    assert code in [p.code for p in refused.value.problems]
    assert stored_definition(container) == before
    assert container.lending.catalogue.product("cn-bullet").annual_rate == Decimal("0.18")


def test_checker_cannot_be_the_maker_of_a_product_change(container: Container) -> None:
    action = container.security.propose(RISK, "product.change", "product:cn-bullet",
                                        {"changes": {"name": "x"}}, "rename")
    with pytest.raises(Forbidden, match="maker"):
        container.security.decide(RISK, action["id"], approve=True)
    assert stored_definition(container)["name"] != "x"


def change_jurisdiction(container: Container, changes: dict[str, object]) -> dict[str, object]:
    """Propose and approve a change of CN's rules."""
    action = container.security.propose(MAKER, "jurisdiction.change", "jurisdiction:CN",
                                        {"changes": changes}, "regulator lowered the cap")
    return dict(container.security.decide(RISK, action["id"], approve=True))


def test_a_lowered_legal_cap_is_enforced_by_every_process(
        container: Container, tmp_path: Path, database_url: str) -> None:
    lending = container.lending
    before = lending.book("j1", "cn-bullet", 100_000, parse_term("14d"))  # 18% under 24%
    decided = change_jurisdiction(container, {"annual_cost_cap": "0.10"})
    assert decided["status"] == "approved"
    assert decided["result"]["after"]["annual_cost_cap"] == "0.10"  # type: ignore[index]
    with pytest.raises(Refused) as refused:
        lending.book("j2", "cn-bullet", 100_000, parse_term("14d"))
    assert any("cap" in p.code for p in refused.value.problems), refused.value.problems
    other = build(settings_with(tmp_path / "other", database_url))  # another process
    try:
        assert str(other.catalogue.jurisdictions["CN"].annual_cost_cap) == "0.24"  # the file
        with pytest.raises(Refused):
            other.lending.book("j3", "cn-bullet", 100_000, parse_term("14d"))
        assert str(other.catalogue.jurisdictions["CN"].annual_cost_cap) == "0.10"  # refreshed
    finally:
        other.engine.dispose()
    with container.engine.connect() as connection:
        assert load_loan(connection, before).state.status.value == "active"  # kept its terms
        audit = connection.execute(select(ct.audit_records.c.action).where(
            ct.audit_records.c.target == "jurisdiction:CN")).scalars().all()
    assert "jurisdiction.change" in audit


@pytest.mark.parametrize(("changes", "code"), [
    ({"annual_cost_cap": "-0.10"}, "jurisdiction.invalid"),
    ({"cap_measure": "weird"}, "jurisdiction.invalid"),
    ({"amount_min": "999999.00"}, "jurisdiction.invalid"),
    ({"colour": "red"}, "jurisdiction.field_unknown"),
    ({"code": "US"}, "jurisdiction.code_fixed"),
    ({}, "jurisdiction.changes_empty"),
])
def test_an_invalid_jurisdiction_change_is_refused_and_changes_nothing(
        container: Container, changes: dict[str, object], code: str) -> None:
    action = container.security.propose(MAKER, "jurisdiction.change", "jurisdiction:CN",
                                        {"changes": changes}, "typo")
    with pytest.raises(Refused) as refused:
        container.security.decide(RISK, action["id"], approve=True)
    assert code in {p.code for p in refused.value.problems}
    with container.engine.connect() as connection:
        stored = json.loads(connection.execute(select(t.jurisdictions.c.definition).where(
            t.jurisdictions.c.code == "CN")).scalar_one())
    assert stored["annual_cost_cap"] == "0.24"
    assert container.lending.book("ok", "cn-bullet", 100_000, parse_term("14d")) > 0


def test_a_payment_booked_under_an_older_product_definition_is_still_reversed(
        container: Container) -> None:
    """The reversal replays the loan from its booking with the schedule-shaping fields it
    was booked with (stored with the loan), not with the product as changed since."""
    loan_a, loan_b, payment_id = _run(container.lending, SCENARIOS["annuity-middle"], "old")
    action = container.security.propose(MAKER, "product.change", "product:cn-annuity", {
        "changes": {"rolling": "none", "calendar": "none", "fee_mode": "deducted"}},
        "new product terms")
    assert container.security.decide(RISK, action["id"], approve=True)["status"] == "approved"
    result = reverse(container, payment_id)
    assert result["loan_id"] == loan_a
    with container.engine.connect() as connection:
        assert comparable(load_loan(connection, loan_a).state) == comparable(
            load_loan(connection, loan_b).state)
        booked = load_loan(connection, loan_a).booking_terms
    assert booked == {"calendar": "CN", "fee_mode": "financed", "rate_basis": "annual",
                      "rolling": "following"}
    assert_journal_balances(container)
