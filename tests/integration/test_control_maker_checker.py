"""Maker-checker, segregation of duties, personal data and audit, through the services.

Every decision is checked in the audit records and the ledger still verifies afterwards
(audit records are leaves of the same log as the journal).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from lendsafe.adapters.db import control_tables as ct
from lendsafe.adapters.db import tables as t
from lendsafe.adapters.db.repository import trial_balance
from lendsafe.bootstrap import Container, build
from lendsafe.domain.lending.product import parse_term
from lendsafe.domain.problems import Refused
from lendsafe.services.access import Forbidden, Principal
from lendsafe.services.control import Security
from tests.e2e.test_authz_matrix import settings_for

PASSWORD = "correct horse battery staple"


@pytest.fixture
def container(tmp_path: Path) -> Iterator[Container]:
    """A fresh database with two loans and a payment."""
    built = build(settings_for(tmp_path))
    built.lending.initialise(date(2026, 3, 2))
    built.lending.book("alice", "cn-bullet", 100_000, parse_term("14d"))
    built.lending.pay(1, 5_000, "pay-000001")
    yield built
    built.engine.dispose()


def staff(*roles: str, name: str = "u") -> Principal:
    """A principal holding ``roles``."""
    from lendsafe.services.access import role_catalogue

    return Principal(f"user:{name}", roles[0], roles=frozenset(roles),
                     permissions=role_catalogue().permissions_of(roles))


def counts(container: Container) -> dict[str, int]:
    """Row counts of the tables an action may touch."""
    with container.engine.connect() as connection:
        return {table.name: connection.execute(select(func.count()).select_from(table)).scalar_one()
                for table in (t.journal, ct.user_roles, ct.pending_actions, ct.audit_records)}


def test_maker_cannot_approve_their_own_action(container: Container) -> None:
    security: Security = container.security
    maker = staff("risk_officer", name="rita")
    action = security.propose(maker, "product.change", "product:cn-bullet",
                              {"changes": {"name": "Bullet 2"}}, "rename")
    with pytest.raises(Forbidden, match="maker"):
        security.decide(maker, action["id"], approve=True)
    with pytest.raises(Forbidden, match="maker"):
        security.decide(maker, action["id"], approve=False)
    assert security.show(action["id"], maker)["status"] == "pending"
    refused = [r for r in _audit(container) if r["action"] == "control.refused_decision"]
    assert len(refused) == 2


def test_checker_needs_the_kind_permission(container: Container) -> None:
    security = container.security
    action = security.propose(staff("operations", name="olga"), "payment.reversal",
                              "payment:1", {}, "customer paid twice")
    with pytest.raises(Forbidden, match=r"approve\.payment\.reversal"):
        security.decide(staff("risk_officer", name="rita"), action["id"], approve=True)


def test_approval_applies_a_payment_reversal_as_reversing_entries(container: Container
                                                                   ) -> None:
    security = container.security
    action = security.propose(staff("operations", name="olga"), "payment.reversal",
                              "payment:1", {}, "duplicate payment")
    assert action["will_change"]["reversing_entries"], action
    before = counts(container)
    decided = security.decide(staff("finance", name="fred"), action["id"], approve=True,
                              reason="checked the bank statement")
    assert decided["status"] == "approved" and decided["checker"] == "user:fred"
    with container.engine.connect() as connection:
        entries = connection.execute(select(t.journal).where(
            t.journal.c.reference.in_(["payment:1", "reversal:payment:1"]))).all()
    originals = [e for e in entries if e.reference == "payment:1"]
    reversals = [e for e in entries if e.reference == "reversal:payment:1"]
    assert len(reversals) == len(originals) > 0
    for original, reversal in zip(originals, reversals, strict=True):
        assert (reversal.debit_account, reversal.credit_account) == (
            original.credit_account, original.debit_account)
        assert reversal.amount_minor == original.amount_minor
    after = counts(container)
    assert after["journal_entries"] == before["journal_entries"] + len(reversals)
    assert container.ledger.verify(record=False).ok
    view = container.lending.loan_view(1)  # the loan is as if the payment never came
    assert view["balances"]["principal"] == "1000.00" and view["payments"][0]["reversed"]
    second = security.propose(staff("operations", name="olga"), "payment.reversal",
                              "payment:1", {}, "again")
    with pytest.raises(Refused, match="already") as refused:
        security.decide(staff("finance", name="fred"), second["id"], approve=True)
    assert [p.code for p in refused.value.problems] == ["payment.already_reversed"]


def test_rejection_leaves_nothing_behind(container: Container) -> None:
    security = container.security
    action = security.propose(staff("operations", name="olga"), "loan.write_off", "loan:1",
                              {}, "borrower deceased")
    before = counts(container)
    security.decide(staff("risk_officer", name="rita"), action["id"], approve=False,
                    reason="not documented")
    after = counts(container)
    assert after["journal_entries"] == before["journal_entries"]
    assert after["user_roles"] == before["user_roles"]
    assert container.lending.loan_view(1)["status"] == "active"
    assert security.show(action["id"], staff("auditor", name="ann"))["status"] == "rejected"


def test_write_off_override_applies_atomically(container: Container) -> None:
    security = container.security
    action = security.propose(staff("collector", name="carl"), "loan.write_off", "loan:1",
                              {}, "fraud confirmed")
    assert action["will_change"]["after"]["status"] == "charged_off"
    security.decide(staff("risk_officer", name="rita"), action["id"], approve=True)
    assert container.lending.loan_view(1)["status"] == "charged_off"
    assert container.lending.status()["trial_balance"]["balanced"]
    assert container.ledger.verify(record=False).ok
    with container.engine.connect() as connection:
        receivables = {a: v for a, v in trial_balance(connection, 1).items()
                       if a in ("1100", "1110", "1120", "1130") and v}
        entries = connection.execute(select(t.journal.c.kind).where(
            t.journal.c.reference == "write_off:loan:1")).scalars().all()
    assert receivables == {} and entries and set(entries) == {"charge_off"}
    written = [r for r in _audit(container) if r["action"] == "loan.write_off"]
    assert len(written) == 1 and written[0]["target"] == "loan:1"


def test_a_failing_handler_applies_nothing(container: Container) -> None:
    security = container.security

    def explode(connection: Any, action: Any, checker: str) -> dict[str, Any]:
        connection.execute(t.journal.insert().values(
            business_day=1, loan_id=1, kind="x", debit_account="1000", credit_account="1100",
            amount_minor=1, reference="partial"))
        raise RuntimeError("boom")

    security.register_sensitive_action("test.explode", explode, "approve.product.change")
    action = security.propose(staff("operations", name="olga"), "test.explode", "x:1", {}, "t")
    before = counts(container)
    with pytest.raises(RuntimeError):
        security.decide(staff("risk_officer", name="rita"), action["id"], approve=True)
    assert counts(container)["journal_entries"] == before["journal_entries"]
    assert security.show(action["id"], staff("auditor", name="ann"))["status"] == "pending"


def test_role_grant_goes_through_maker_checker_and_refuses_conflicts(container: Container
                                                                      ) -> None:
    security = container.security
    security.create_user("ursula", PASSWORD, ("underwriter",))
    admin_a, admin_b = staff("administrator", name="a1"), staff("administrator", name="a2")
    fine = security.propose(admin_a, "role.grant", "user:ursula", {"role": "collector"}, "cover")
    assert fine["will_change"]["after"]["roles"] == ["collector", "underwriter"]
    security.decide(admin_b, fine["id"], approve=True)
    clash = security.propose(admin_a, "role.grant", "user:ursula", {"role": "risk_officer"},
                             "promotion")
    assert clash["will_change"]["conflicts"], "the preview shows the conflict"
    with pytest.raises(Refused, match="originate-and-write-off"):
        security.decide(admin_b, clash["id"], approve=True)
    with container.engine.connect() as connection:
        assert security.user_roles(connection, security.user_id(connection, "ursula")) == [
            "collector", "underwriter"]


def test_creating_a_user_with_conflicting_roles_is_refused(container: Container) -> None:
    with pytest.raises(Refused, match=r"segregation|break"):
        container.security.create_user("mallory", PASSWORD, ("operations", "finance"))


def test_personal_data_is_encrypted_masked_and_unmasked_reads_audited(container: Container
                                                                        ) -> None:
    security = container.security
    fields = {"name": "Alice Li", "national_id": "110101199003071234",
              "phone": "13812345678", "address": "1 Long Street, Beijing"}
    security.set_pii(1, fields, "test")
    with container.engine.connect() as connection:
        row = connection.execute(select(ct.borrower_pii)).one()
    stored = bytes(row.ciphertext) + bytes(row.wrapped_key)
    for value in fields.values():
        assert value.encode() not in stored
    masked = security.borrower(1, staff("auditor", name="ann"))
    assert masked["masked"] and masked["personal_data"]["phone"] == "138****5678"
    assert "Alice" not in json.dumps(masked)
    reads_before = [r for r in _audit(container) if r["action"] == "pii.read"]
    clear = security.borrower(1, staff("collector", name="carl"), reason="call about arrears")
    assert clear["personal_data"] == fields
    reads = [r for r in _audit(container) if r["action"] == "pii.read"]
    assert len(reads) == len(reads_before) + 1
    assert reads[-1]["actor"] == "user:carl" and reads[-1]["reason"] == "call about arrears"


def test_master_key_rotation_rewraps_data_keys(tmp_path: Path) -> None:
    import base64

    from lendsafe.adapters.security.pii import KeyRing, KeyRingError, Sealed

    old = KeyRing.parse("k1:" + base64.b64encode(b"1" * 32).decode())
    both = KeyRing.parse("k2:" + base64.b64encode(b"2" * 32).decode() + ",k1:"
                         + base64.b64encode(b"1" * 32).decode())
    sealed = old.seal({"name": "Alice"}, "borrower:1")
    rotated = both.rewrap(sealed)
    assert rotated.kek_id == "k2" and rotated.ciphertext == sealed.ciphertext
    only_new = KeyRing.parse("k2:" + base64.b64encode(b"2" * 32).decode())
    assert only_new.open(rotated, "borrower:1") == {"name": "Alice"}
    with pytest.raises(KeyRingError):
        only_new.open(sealed, "borrower:1")
    with pytest.raises(KeyRingError):
        both.open(rotated, "borrower:2")  # a record moved to another borrower does not open
    flipped = rotated.ciphertext[:-1] + bytes([rotated.ciphertext[-1] ^ 1])
    with pytest.raises(KeyRingError):
        both.open(Sealed(rotated.kek_id, rotated.wrapped_key, flipped), "borrower:1")


def test_rotation_through_the_service_keeps_records_readable(container: Container) -> None:
    import base64
    import dataclasses

    from lendsafe.adapters.security.pii import KeyRing

    security = container.security
    security.set_pii(1, {"name": "Alice Li", "phone": "13812345678"}, "test")
    old_ring = security.keyring
    old_id, old_key = next(iter(old_ring.keys.items()))
    new_ring = KeyRing([("k9", b"9" * 32), (old_id, old_key)])
    rotated = dataclasses.replace(security, keyring=new_ring)
    assert rotated.rotate_keys() == 1
    only_new = dataclasses.replace(security, keyring=KeyRing([("k9", b"9" * 32)]))
    assert only_new.borrower(1, staff("collector", name="c"))["personal_data"]["name"] == \
        "Alice Li"
    assert base64  # keys above are raw bytes


def test_audit_report_covers_the_period(container: Container) -> None:
    security = container.security
    action = security.propose(staff("operations", name="olga"), "product.change",
                              "product:cn-bullet", {"changes": {"name": "B"}}, "rename")
    security.propose(staff("operations", name="olga"), "loan.write_off", "loan:1", {}, "wait")
    security.decide(staff("risk_officer", name="rita"), action["id"], approve=True)
    container.ledger.verify()
    report = security.audit_report(date(2000, 1, 1), date(2100, 1, 1))
    assert len(report["maker_checker"]["decisions"]) == 1
    assert len(report["maker_checker"]["waiting"]) == 1
    assert report["ledger"]["verifications"][-1]["ok"] is True
    assert {"loan.book", "loan.pay"} <= set(report["all_time_counts_by_action"])


def _audit(container: Container) -> list[dict[str, Any]]:
    from lendsafe.services.audit import records

    return records(container.engine, date(2000, 1, 1), date(2100, 1, 1))
