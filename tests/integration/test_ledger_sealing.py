"""The sealer: chunks, gaps (ids committed out of order), unexpected rows, exported heads,
receipts checked offline."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from lendsafe.adapters.db.engine import make_engine, upgrade
from lendsafe.adapters.signing import TreeHeadSigner, export_public_key
from lendsafe.services import ledger as ledger_module
from lendsafe.services.audit import AuditLog
from lendsafe.services.catalogue import Catalogue
from lendsafe.services.ledger import Ledger, check_receipt
from lendsafe.services.lending import LendingService

INSERT = text("INSERT INTO journal_entries (id, business_day, loan_id, kind, debit_account, "
              "credit_account, amount_minor, reference) VALUES (:i, 1, NULL, 'test', '1000', "
              "'4000', :a, :r)")


def _ledger(tmp_path: Path, name: str = "l") -> tuple[Engine, Ledger]:
    engine = make_engine(f"sqlite:///{tmp_path / f'{name}.sqlite'}")
    upgrade(engine)
    return engine, Ledger(engine, TreeHeadSigner.from_file(tmp_path / "key.pem"),
                          tmp_path / "heads")


def _positions(engine: Engine) -> list[int]:
    with engine.connect() as connection:
        return [r[0] for r in connection.execute(text(
            "SELECT ref_id FROM ledger_leaves WHERE kind = 'journal' ORDER BY position"))]


def test_ids_committed_out_of_order_are_sealed_when_they_appear(tmp_path: Path) -> None:
    engine, ledger = _ledger(tmp_path)
    with engine.begin() as connection:
        for i in (1, 2, 4, 5):
            connection.execute(INSERT, {"i": i, "a": i, "r": None})
        ledger.seal(connection)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT ref_id FROM ledger_gaps")).scalars().all() == [3]
    with engine.begin() as connection:  # the slower transaction commits id 3 now
        connection.execute(INSERT, {"i": 3, "a": 3, "r": None})
        connection.execute(INSERT, {"i": 6, "a": 6, "r": None})
        ledger.seal(connection)
    assert _positions(engine) == [1, 2, 4, 5, 3, 6]
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM ledger_gaps")).scalar() == 0
    assert ledger.verify(record=False).ok


def test_sealing_in_chunks_gives_the_same_log(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    roots = []
    for chunk in (7, 100_000):
        monkeypatch.setattr(ledger_module, "SEAL_CHUNK", chunk)
        engine, ledger = _ledger(tmp_path / str(chunk))
        with engine.begin() as connection:
            for i in range(1, 51):
                connection.execute(INSERT, {"i": i, "a": i, "r": None})
            result = ledger.seal(connection)
        assert result.appended == 50
        roots.append(result.root)
        assert ledger.verify(record=False).ok
        engine.dispose()
    assert roots[0] == roots[1]


def test_rows_a_change_did_not_write_are_named_in_the_audit_trail(
        tmp_path: Path, catalogue: Catalogue) -> None:
    engine, ledger = _ledger(tmp_path)
    audit = AuditLog()
    lending = LendingService(engine, catalogue)
    lending.initialise(date(2026, 3, 2))
    lending.subscribe(audit.on_change)
    lending.subscribe(ledger.on_change)
    loan_id = lending.book("alice", "cn-bullet", 50_000, catalogue.product("cn-bullet").term_min)
    with engine.begin() as connection:  # behind the application's back
        connection.execute(INSERT, {"i": 1000, "a": 99, "r": "forged"})
    assert ledger.verify(record=False).first_bad_entry == {
        "kind": "journal", "id": 1000, "position": None, "exact": True,
        "reason": "row not in the log (inserted outside the application, or not sealed yet)"}
    lending.pay(loan_id, 1_000, "pay-00000001")
    with engine.connect() as connection:
        notice = connection.execute(text(
            "SELECT after FROM audit_records WHERE action = 'ledger.unexpected'")).scalar_one()
    assert json.loads(notice)["ids"] == [1000]


def test_heads_are_exported_per_ledger_and_receipts_verify_offline(
        tmp_path: Path, catalogue: Catalogue) -> None:
    ids = []
    for name in ("one", "two"):
        engine, ledger = _ledger(tmp_path, name)
        lending = LendingService(engine, catalogue)
        lending.initialise(date(2026, 3, 2))
        lending.subscribe(ledger.on_change)
        loan_id = lending.book("bob", "cn-bullet", 60_000, catalogue.product("cn-bullet").term_min)
        payment = lending.pay(loan_id, 2_000, f"pay-{name}-0001")
        lending.close_business(date(2026, 3, 3))
        with engine.connect() as connection:
            ids.append(ledger.ledger_id(connection))
        receipt = ledger.receipt(payment["payment_id"])
        key = export_public_key(ledger.signer.public_key)
        assert check_receipt(receipt, key) == []
        forged = json.loads(json.dumps(receipt))
        forged["entries"][0]["leaf_data"] = forged["entries"][0]["leaf_data"].replace(
            "|2000|", "|2001|")
        assert check_receipt(forged, key)
        other = json.loads(json.dumps(receipt))
        other["tree_head"]["root"] = "00" * 32
        assert any("signature" in p for p in check_receipt(other, key))
        stranger = TreeHeadSigner.from_file(tmp_path / "other.pem")
        assert any("signature" in p for p in check_receipt(
            receipt, export_public_key(stranger.public_key)))
        engine.dispose()
    assert ids[0] != ids[1]
    assert sorted(p.name for p in (tmp_path / "heads").iterdir()) == sorted(ids)
