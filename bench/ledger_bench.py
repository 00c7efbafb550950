"""Benchmark: the tamper-evident journal — append with sealing, and `ledger verify`.

For each backend (SQLite file; PostgreSQL when reachable) it times, in one process:

(a) append: N journal entries in batches of B, one transaction per batch, bulk-inserted the
    way close of business does (``executemany`` on SQLite, COPY on PostgreSQL) — the
    baseline, no hashing;
(b) append + seal: the same, with :meth:`Ledger.seal` in each batch's transaction (read the
    new rows back, canonical bytes, SHA-256 leaves, leaf rows, frontier, checkpoint);
(c) verify: :meth:`Ledger.verify` over the N sealed entries (every leaf recomputed from its
    row, the tree built, heads checked);
(d) the same reads as (c) without hashing or tree (load rows and leaves, compare ids) —
    the baseline for (c).

It prints the command, entries/s and the ratios (b)/(a) and (c)/(d).

Run: .venv/bin/python bench/ledger_bench.py [--entries 1000000] [--batch 50000]
         [--backend sqlite|postgresql|both] [--postgres-url URL]
"""

from __future__ import annotations

import argparse
import io
import platform
import shlex
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from lendsafe.adapters.db.engine import make_engine, upgrade
from lendsafe.adapters.signing import TreeHeadSigner
from lendsafe.services.ledger import JOURNAL_COLUMNS, Ledger, raw_rows

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
COLUMNS = "business_day, loan_id, kind, debit_account, credit_account, amount_minor, reference"


def rows_for(start: int, count: int) -> list[tuple[Any, ...]]:
    """Journal rows shaped like close-of-business accruals (no ids: the database assigns)."""
    return [(20514 + i % 30, 1 + i % 1_000_000, "accrual", "1110", "4000", 1 + i % 997, None)
            for i in range(start, start + count)]


def insert_batch(engine: Engine, connection: Any, rows: list[tuple[Any, ...]]) -> None:
    """Bulk insert through the DBAPI cursor (COPY on PostgreSQL)."""
    cursor = connection.connection.cursor()
    if engine.dialect.name == "postgresql":
        buffer = io.StringIO()
        for r in rows:
            buffer.write("\t".join("\\N" if v is None else str(v) for v in r) + "\n")
        with cursor.copy(f"COPY journal_entries ({COLUMNS}) FROM STDIN") as copy:
            copy.write(buffer.getvalue())
    else:
        cursor.executemany(f"INSERT INTO journal_entries ({COLUMNS}) VALUES "
                           "(?, ?, ?, ?, ?, ?, ?)", rows)
    cursor.close()


def append(engine: Engine, ledger: Ledger | None, entries: int, batch: int) -> float:
    """Seconds to append ``entries`` in batches (sealing each batch when ``ledger``)."""
    started = time.perf_counter()
    for start in range(0, entries, batch):
        rows = rows_for(start, min(batch, entries - start))
        with engine.begin() as connection:
            insert_batch(engine, connection, rows)
            if ledger is not None:
                ledger.seal(connection)
    return time.perf_counter() - started


def reads_only(engine: Engine) -> float:
    """The reads `verify` must do, without hashing: rows and leaves loaded, ids compared."""
    started = time.perf_counter()
    with engine.connect() as connection:
        leaves = raw_rows(connection, "SELECT position, kind, ref_id, leaf_hash FROM "
                          "ledger_leaves ORDER BY position")
        rows = raw_rows(connection, f"SELECT {JOURNAL_COLUMNS} FROM journal_entries")
    ids = {r[0] for r in rows}
    assert all(leaf[2] in ids for leaf in leaves)
    return time.perf_counter() - started


def fresh(backend: str, url: str, tmp: Path) -> tuple[Engine, Ledger, Any]:
    """A migrated empty database and a ledger on it; returns a cleanup callable too."""
    if backend == "sqlite":
        engine = make_engine(f"sqlite:///{tmp / f'{uuid.uuid4().hex}.sqlite'}")
        upgrade(engine)
        return engine, _ledger(engine, tmp), engine.dispose
    name = f"lendsafe_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(make_url(url).set(database=name).render_as_string(hide_password=False))
    upgrade(engine)

    def cleanup() -> None:
        engine.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return engine, _ledger(engine, tmp), cleanup


def _ledger(engine: Engine, tmp: Path) -> Ledger:
    return Ledger(engine, TreeHeadSigner.from_file(tmp / "key.pem"), tmp / "heads")


def run(backend: str, url: str, entries: int, batch: int, tmp: Path) -> dict[str, float]:
    """All four timings on one backend."""
    engine, _ledger_unused, cleanup = fresh(backend, url, tmp)
    try:
        plain = append(engine, None, entries, batch)
    finally:
        cleanup()
    engine, ledger, cleanup = fresh(backend, url, tmp)
    try:
        sealed = append(engine, ledger, entries, batch)
        ledger.head()
        verify_started = time.perf_counter()
        report = ledger.verify(record=False)
        verify = time.perf_counter() - verify_started
        assert report.ok and report.entries == entries, report
        reads = min(reads_only(engine) for _ in range(2))
    finally:
        cleanup()
    return {"append": plain, "append_sealed": sealed, "verify": verify, "reads": reads}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=50_000)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--postgres-url", default=POSTGRES_URL)
    args = parser.parse_args()
    print("$ .venv/bin/python bench/ledger_bench.py " + shlex.join(sys.argv[1:]))
    print(f"python {platform.python_version()} on {platform.machine()}; "
          f"{args.entries:,} entries in batches of {args.batch:,}")
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    with tempfile.TemporaryDirectory() as tmp:
        for backend in backends:
            try:
                figures = run(backend, args.postgres_url, args.entries, args.batch, Path(tmp))
            except Exception as error:  # a missing server is reported, not fatal
                print(f"{backend}: skipped ({type(error).__name__}: {str(error)[:120]})")
                continue
            _print(backend, args.entries, figures)


def _print(backend: str, entries: int, f: dict[str, float]) -> None:
    print(f"\n[{backend}]")
    print(f"  append, no hashing      {f['append']:7.2f} s  {entries / f['append']:>10,.0f} /s")
    ratio = f["append_sealed"] / f["append"]
    print(f"  append + seal (hashing) {f['append_sealed']:7.2f} s  "
          f"{entries / f['append_sealed']:>10,.0f} /s   ratio {ratio:.2f}")
    print(f"  verify (all leaves)     {f['verify']:7.2f} s  {entries / f['verify']:>10,.0f} /s")
    print(f"  same reads, no hashing  {f['reads']:7.2f} s                  "
          f"ratio {f['verify'] / f['reads']:.2f}")


if __name__ == "__main__":
    main()
