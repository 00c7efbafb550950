"""Tamper tests: random single changes made directly in the database make `ledger verify` fail
and name the right entry (id and position), every time; untouched ledgers never fail.

Each change is made inside a transaction, verified on the same connection, then rolled back,
so thousands of trials share one ledger. On PostgreSQL the append-only triggers are switched
off for the tampering transaction (``session_replication_role = replica``, as a superuser
who bypasses the application would).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, text

from lendsafe.adapters.db.engine import make_engine, upgrade
from lendsafe.adapters.signing import TreeHeadSigner
from lendsafe.services.audit import AuditLog
from lendsafe.services.catalogue import Catalogue
from lendsafe.services.ledger import Ledger
from lendsafe.services.lending import LendingService

JOURNAL_TEXT = ("kind", "debit_account", "credit_account", "reference")
JOURNAL_NUMBERS = ("amount_minor", "business_day", "loan_id")
AUDIT_TEXT = ("actor", "action", "target", "after")
AUDIT_NUMBERS = ("at_micros",)
TABLES = {"journal": "journal_entries", "audit": "audit_records"}
COLUMNS = {
    "journal": ("business_day", "loan_id", "kind", "debit_account", "credit_account",
                "amount_minor", "reference"),
    "audit": ("at_micros", "business_day", "actor", "action", "target", "before", "after",
              "reason"),
}


def build_ledger(url: str, tmp_path: Path, catalogue: Catalogue, loans: int = 16,
                 days: int = 8) -> tuple[Engine, Ledger]:
    """A ledger with bookings, payments, closes of business and a final signed head."""
    engine = make_engine(url)
    upgrade(engine)
    lending = LendingService(engine, catalogue, eod_chunk_size=5)
    lending.initialise(date(2026, 3, 2))
    audit = AuditLog()
    ledger = Ledger(engine, TreeHeadSigner.from_file(tmp_path / "key.pem"),
                    tmp_path / "heads", audit=audit)
    lending.subscribe(audit.on_change)
    lending.subscribe(ledger.on_change)
    product = catalogue.product("cn-bullet")
    ids = [lending.book(f"borrower-{i}", product.id, 50_000 + 1_000 * i, product.term_max,
                        actor="staff:alice") for i in range(loans)]
    rng = random.Random(5)
    for day in range(days):
        for loan_id in rng.sample(ids, min(3, len(ids))):
            lending.pay(loan_id, rng.randint(100, 3_000), f"pay-{day}-{loan_id}",
                        actor="staff:bob")
        lending.close_business(lending.open_date())
    ledger.head()
    return engine, ledger


@dataclass
class Tamper:
    """One change: what to do and which entry verify must name (position None: unsealed)."""

    name: str
    apply: Callable[[Connection], None]
    kind: str
    ref_id: int
    position: int | None


class Ledgers:
    """Reads the stored log so that tampers can be drawn at random."""

    def __init__(self, connection: Connection) -> None:
        self.leaves = connection.execute(text(
            "SELECT position, kind, ref_id FROM ledger_leaves ORDER BY position")).all()
        self.position = {(k, r): p for p, k, r in self.leaves}
        self.rows = {kind: {row[0]: row for row in connection.execute(text(
            f"SELECT id, {', '.join(COLUMNS[kind])} FROM {TABLES[kind]}")).all()}
            for kind in TABLES}


def _flip(value: str, rng: random.Random) -> str:
    index = rng.randrange(len(value))
    options = [c for c in "abcxyz019:|{}" if c != value[index]]
    return value[:index] + rng.choice(options) + value[index + 1:]


def _update(kind: str, ref: int, column: str, value: Any) -> Callable[[Connection], None]:
    sql = text(f"UPDATE {TABLES[kind]} SET {column} = :v WHERE id = :i")
    return lambda c: c.execute(sql, {"v": value, "i": ref})


def draw(state: Ledgers, rng: random.Random) -> Tamper:
    """One random single change and the entry it must be named by."""
    kind = rng.choice(("journal", "journal", "audit"))
    ref = rng.choice(sorted(state.rows[kind]))
    row = dict(zip(("id", *COLUMNS[kind]), state.rows[kind][ref], strict=True))
    position = state.position[(kind, ref)]
    action = rng.choice(("flip", "number", "delete", "swap", "insert"))
    if action == "flip":
        names = [c for c in (JOURNAL_TEXT if kind == "journal" else AUDIT_TEXT) if row[c]]
        column = rng.choice(names)
        return Tamper(f"flip {kind}.{column}", _update(kind, ref, column,
                                                        _flip(row[column], rng)),
                      kind, ref, position)
    if action == "number":
        column = rng.choice(JOURNAL_NUMBERS if kind == "journal" else AUDIT_NUMBERS)
        value = (row[column] or 0) + rng.choice((-1, 1)) * rng.randint(1, 10_000)
        return Tamper(f"change {kind}.{column}", _update(kind, ref, column, value),
                      kind, ref, position)
    if action == "delete":
        sql = text(f"DELETE FROM {TABLES[kind]} WHERE id = :i")
        return Tamper(f"delete {kind}", lambda c: c.execute(sql, {"i": ref}), kind, ref,
                      position)
    if action == "swap":
        return _swap(state, rng, kind, ref, row)
    return _insert(state, kind, row)


def _swap(state: Ledgers, rng: random.Random, kind: str, ref: int, row: dict[str, Any]
          ) -> Tamper:
    columns = COLUMNS[kind]
    others = [i for i, r in state.rows[kind].items() if tuple(r[1:]) != tuple(
        row[c] for c in columns)]
    other = rng.choice(others)
    other_row = dict(zip(("id", *columns), state.rows[kind][other], strict=True))
    sql = text(f"UPDATE {TABLES[kind]} SET {', '.join(f'{c} = :{c}' for c in columns)} "
               "WHERE id = :id")

    def apply(c: Connection) -> None:
        c.execute(sql, {**{k: other_row[k] for k in columns}, "id": ref})
        c.execute(sql, {**{k: row[k] for k in columns}, "id": other})

    first = min((ref, other), key=lambda i: state.position[(kind, i)])
    return Tamper(f"swap {kind}", apply, kind, first, state.position[(kind, first)])


def _insert(state: Ledgers, kind: str, row: dict[str, Any]) -> Tamper:
    new_id = max(state.rows[kind]) + 1000
    columns = ("id", *COLUMNS[kind])
    sql = text(f"INSERT INTO {TABLES[kind]} ({', '.join(columns)}) VALUES "
               f"({', '.join(':' + c for c in columns)})")
    values = {**row, "id": new_id}
    return Tamper(f"insert {kind}", lambda c: c.execute(sql, values), kind, new_id, None)


def run_trials(engine: Engine, ledger: Ledger, trials: int, seed: int,
               before: Callable[[Connection], None] | None = None) -> dict[str, int]:
    """Apply ``trials`` random tampers one at a time; return how many of each were caught."""
    with engine.connect() as connection:
        state = Ledgers(connection)
    rng = random.Random(seed)
    caught: dict[str, int] = {}
    for trial in range(trials):
        tamper = draw(state, rng)
        with engine.connect() as connection:
            transaction = connection.begin()
            if before is not None:
                before(connection)
            tamper.apply(connection)
            report = ledger.verify(record=False, connection=connection)
            transaction.rollback()
        bad = report.first_bad_entry
        assert not report.ok, f"trial {trial}: {tamper.name} not detected"
        assert bad is not None, f"trial {trial}: {tamper.name}: no entry named"
        named = (bad["kind"], bad["id"], bad["position"])
        assert named == (tamper.kind, tamper.ref_id, tamper.position), (
            f"trial {trial}: {tamper.name} named {named}, expected "
            f"{(tamper.kind, tamper.ref_id, tamper.position)}: {bad['reason']}")
        caught[tamper.name.split()[0]] = caught.get(tamper.name.split()[0], 0) + 1
    return caught


@pytest.fixture(scope="module")
def sqlite_ledger(tmp_path_factory: pytest.TempPathFactory, catalogue: Catalogue
                  ) -> tuple[Engine, Ledger]:
    """One SQLite ledger shared by the tamper trials of this module."""
    tmp = tmp_path_factory.mktemp("ledger")
    return build_ledger(f"sqlite:///{tmp / 'l.sqlite'}", tmp, catalogue)


def test_untouched_ledger_verifies(sqlite_ledger: tuple[Engine, Ledger]) -> None:
    _engine, ledger = sqlite_ledger
    for _ in range(20):
        report = ledger.verify(record=False)
        assert report.ok, report
        assert report.first_bad_entry is None
    assert report.entries > 150
    assert report.exported_heads >= 6  # one per close of business and the final one


def test_two_thousand_random_tampers_are_caught_and_named(
        sqlite_ledger: tuple[Engine, Ledger]) -> None:
    engine, ledger = sqlite_ledger
    caught = run_trials(engine, ledger, trials=2000, seed=11)
    assert sum(caught.values()) == 2000
    assert set(caught) == {"flip", "change", "delete", "swap", "insert"}
    assert ledger.verify(record=False).ok  # every change rolled back: no false alarm after


def test_rewriting_a_row_and_its_leaf_is_caught_by_the_signed_heads(
        sqlite_ledger: tuple[Engine, Ledger]) -> None:
    engine, ledger = sqlite_ledger
    from lendsafe.domain.ledger.canonical import journal_bytes
    from lendsafe.domain.ledger.merkle import leaf_hash
    from lendsafe.services.ledger import JOURNAL_COLUMNS, raw_rows

    with engine.connect() as connection:
        transaction = connection.begin()
        position, ref = connection.execute(text(
            "SELECT position, ref_id FROM ledger_leaves WHERE kind = 'journal' "
            "ORDER BY position LIMIT 1 OFFSET 40")).one()
        connection.execute(text("UPDATE journal_entries SET amount_minor = amount_minor + 1 "
                                "WHERE id = :i"), {"i": ref})
        row = raw_rows(connection, f"SELECT {JOURNAL_COLUMNS} FROM journal_entries "
                                   "WHERE id = :i", {"i": ref})[0]
        connection.execute(text("UPDATE ledger_leaves SET leaf_hash = :h WHERE position = :p"),
                           {"h": leaf_hash(journal_bytes(row)), "p": position})
        report = ledger.verify(record=False, connection=connection)
        transaction.rollback()
    assert not report.ok
    bad = report.first_bad_entry
    assert bad is not None and bad["position"] <= position
    assert any("not reproduced" in p for p in report.problems)


def test_deleting_tail_entries_is_caught_by_the_exported_head(
        sqlite_ledger: tuple[Engine, Ledger]) -> None:
    engine, ledger = sqlite_ledger
    with engine.connect() as connection:
        transaction = connection.begin()
        size = connection.execute(text("SELECT size FROM ledger_state")).scalar_one()
        connection.execute(text("DELETE FROM ledger_leaves WHERE position >= :n"),
                           {"n": size - 3})
        connection.execute(text("DELETE FROM ledger_heads"))
        connection.execute(text("UPDATE ledger_state SET size = :n"), {"n": size - 3})
        report = ledger.verify(record=False, connection=connection)
        transaction.rollback()
    assert not report.ok
    assert report.first_bad_entry is not None
    # the previous signed head still holds, the last one does not: the bad entry lies between
    previous = max(h for h in _exported_sizes(ledger) if h < size)
    assert previous <= report.first_bad_entry["position"] <= size - 3
    assert any("head at size" in p and "not reproduced" in p for p in report.problems)


def _exported_sizes(ledger: Ledger) -> list[int]:
    with ledger.engine.connect() as connection:
        heads, _problems = ledger.exported_heads(ledger.ledger_id(connection))
    return [h.size for h in heads]


@pytest.mark.postgres
def test_tampers_on_postgresql(postgres_url: str, tmp_path: Path, catalogue: Catalogue) -> None:
    engine, ledger = build_ledger(postgres_url, tmp_path, catalogue, loans=8, days=4)
    try:
        assert ledger.verify(record=False).ok
        caught = run_trials(engine, ledger, trials=200, seed=3, before=lambda c: c.execute(
            text("SET LOCAL session_replication_role = replica")))
        assert sum(caught.values()) == 200
        assert ledger.verify(record=False).ok
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgresql_refuses_update_and_delete_on_append_only_tables(
        postgres_url: str, tmp_path: Path, catalogue: Catalogue) -> None:
    from sqlalchemy.exc import DBAPIError

    engine, _ledger = build_ledger(postgres_url, tmp_path, catalogue, loans=2, days=1)
    statements = [
        "UPDATE journal_entries SET amount_minor = amount_minor + 1",
        "DELETE FROM journal_entries",
        "TRUNCATE journal_entries CASCADE",
        "UPDATE audit_records SET reason = 'x'",
        "DELETE FROM audit_records",
        "UPDATE ledger_leaves SET leaf_hash = leaf_hash",
        "DELETE FROM ledger_leaves",
        "DELETE FROM ledger_heads",
        "UPDATE ledger_meta SET ledger_id = 'other'",
    ]
    try:
        for sql in statements:
            with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
                connection.execute(text(sql))
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM journal_entries")).scalar()
    finally:
        engine.dispose()


def test_sqlite_has_no_triggers_but_verify_catches_the_change(
        sqlite_ledger: tuple[Engine, Ledger]) -> None:
    engine, ledger = sqlite_ledger
    with engine.connect() as connection:
        transaction = connection.begin()
        connection.execute(text("DELETE FROM journal_entries WHERE id = 1"))
        report = ledger.verify(record=False, connection=connection)
        transaction.rollback()
    assert report.first_bad_entry is not None
    assert (report.first_bad_entry["id"], report.first_bad_entry["position"]) == (1, 0)
