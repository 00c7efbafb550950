"""Close of business for N active loans (default 1,000,000), journal postings included.

Usage:  .venv/bin/python bench/eod_bench.py [--loans N] [--backend sqlite|postgresql|both]
            [--postgres-url URL] [--days D]

Builds a book of loans of every shape (a few hundred distinct schedules replicated with new
ids; some already in arrears so that penalties, delinquency and due-date processing all
run), then times close of business for D consecutive business days. Beside it, in the same
process, it times the floor: the least set-based work any close of business must do on the
same tables (one INSERT … SELECT of one journal row per loan and one UPDATE of every loan
row), and prints the ratio, loans per second and peak memory. It also times the pure
per-loan Python reference (``close_day``) on a sample and extrapolates, for scale.
"""

from __future__ import annotations

import argparse
import io
import random
import resource
import sys
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from lendsafe.adapters.db import tables as t
from lendsafe.adapters.db.engine import make_engine, upgrade
from lendsafe.adapters.db.eod import close_business_day
from lendsafe.adapters.db.repository import (
    installment_rows,
    rules_id,
    servicing_columns,
)
from lendsafe.domain.calendar import DayCount, Frequency
from lendsafe.domain.lending.loan import (
    LoanState,
    LoanStatus,
    ServicingRules,
    close_day,
    open_loan,
)
from lendsafe.domain.lending.payments import apply_payment
from lendsafe.domain.lending.product import LoanType, Prepayment, Term, TermUnit
from lendsafe.domain.lending.schedule import LoanTerms, build_schedule
from lendsafe.domain.money import Rounding, currency

BOOK_DATE = date(2026, 1, 5)
CLOSE_FROM = date(2026, 3, 2)
CNY = currency("CNY")


def templates(count: int, rng: random.Random) -> list[LoanState]:
    """Distinct loans of every shape, already serviced up to the day before CLOSE_FROM."""
    states = []
    for index in range(count):
        kind = [LoanType.BULLET, LoanType.ANNUITY, LoanType.EQUAL_PRINCIPAL,
                LoanType.INTEREST_ONLY][index % 4]
        start = BOOK_DATE + timedelta(days=rng.randint(0, 50))
        if kind is LoanType.BULLET:
            term, frequency = Term(rng.randint(14, 60), TermUnit.DAYS), None
        else:
            frequency = rng.choice([Frequency.MONTHLY, Frequency.WEEKLY, Frequency.BIWEEKLY])
            term = Term(rng.randint(3, 9), TermUnit.MONTHS)
        terms = LoanTerms(kind, CNY, rng.randint(500, 20_000) * 100,
                          Decimal(rng.randint(60_000, 240_000)) / 1_000_000, start, term,
                          frequency, DayCount.ACT_365F, Rounding.HALF_UP)
        rules = ServicingRules(kind, terms.annual_rate, terms.day_count, terms.rounding,
                               frequency, 0, 180_000, 3, 90, Prepayment.REDUCE_TERM)
        state, _ = open_loan(0, start, build_schedule(terms), rules)
        payer = rng.random() < 0.92  # 8% of the book stops paying and falls into arrears
        on = start
        while on < CLOSE_FROM:
            due = sum(i.principal_due + i.interest_due + i.fee_due - i.principal_paid
                      - i.interest_paid - i.fee_paid
                      for i in state.installments if i.due_date <= on)
            if payer and due > 0 and state.status is LoanStatus.ACTIVE:
                state, _, _ = apply_payment(state, 0, due, on)
            state, _ = close_day(state, on)
            on += timedelta(days=1)
        states.append(state)
    return states


def loan_row(state: LoanState, loan_id: int, rules_ids: dict[Any, int]) -> dict[str, Any]:
    first = state.installments[0]
    return {
        "id": loan_id, "borrower_id": 1, "product_id": "bench", "currency": "CNY",
        "type": state.rules.type.value, "rules_id": rules_ids[state.rules],
        "principal_minor": sum(i.principal_due for i in state.installments),
        "disbursed_minor": sum(i.principal_due for i in state.installments),
        "upfront_fee_minor": 0, "annual_rate_disclosed": "0.18",
        "disbursed_on": first.period_start, "maturity_date": state.installments[-1].due_date,
        "charged_off_on": None, "penalty_rate_ppm": state.rules.penalty_rate_ppm,
        "grace_days": state.rules.grace_days, "charge_off_days": state.rules.charge_off_days,
        "version": 1, **servicing_columns(state),
    }


def populate(engine: Engine, states: list[LoanState], loans: int) -> int:
    """Insert ``loans`` loans cycling through the templates; returns instalment rows."""
    with engine.begin() as connection:
        connection.execute(t.products.insert().values(
            id="bench", type="mixed", definition="{}", created_at=time_now()))
        connection.execute(t.borrowers.insert().values(
            id=1, external_ref="bench", region=None, created_at=time_now()))
        rules_ids = {state.rules: rules_id(connection, state.rules) for state in states}
    batch = 50_000
    rows_total = 0
    for lo in range(1, loans + 1, batch):
        ids = range(lo, min(lo + batch, loans + 1))
        loan_rows = [loan_row(states[i % len(states)], i, rules_ids) for i in ids]
        rows = [r for i in ids for r in installment_rows(i, states[i % len(states)].installments)]
        rows_total += len(rows)
        _bulk(engine, t.loans, loan_rows)
        _bulk(engine, t.installments, rows)
    return rows_total


def _bulk(engine: Engine, table: Any, rows: list[dict[str, Any]]) -> None:
    if engine.dialect.name != "postgresql":
        with engine.begin() as connection:
            connection.execute(table.insert(), rows)
        return
    columns = list(rows[0])
    buffer = io.StringIO()
    for row in rows:
        buffer.write("\t".join("\\N" if row[c] is None else str(row[c]) for c in columns))
        buffer.write("\n")
    raw = engine.raw_connection()
    try:
        statement = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
        with raw.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[attr-defined]
            copy.write(buffer.getvalue())
        raw.commit()
    finally:
        raw.close()


def time_now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def floor(engine: Engine, on: date) -> float:
    """The least set-based work: one journal row per loan and one update of every loan."""
    day = (on - date(1970, 1, 1)).days
    with engine.connect() as connection:
        transaction = connection.begin()
        started = time.perf_counter()
        connection.execute(text(
            "INSERT INTO journal_entries (business_day, loan_id, kind, debit_account, "
            "credit_account, amount_minor) SELECT :d, id, 'floor', '1110', '4000', 1 "
            "FROM loans"), {"d": day})
        connection.execute(text("UPDATE loans SET version = version + 1"))
        elapsed = time.perf_counter() - started
        transaction.rollback()  # the journal is append-only: the floor leaves nothing behind
    return elapsed


def reference_rate(states: list[LoanState], sample: int) -> float:
    """Loans per second of the pure per-loan Python reference (one day each)."""
    started = time.perf_counter()
    for index in range(sample):
        close_day(states[index % len(states)], CLOSE_FROM)
    return sample / (time.perf_counter() - started)


def run(url: str, loans: int, days: int, label: str, states: list[LoanState]) -> dict[str, Any]:
    engine = make_engine(url)
    upgrade(engine)
    started = time.perf_counter()
    instalments = populate(engine, states, loans)
    print(f"[{label}] built {loans:,} loans / {instalments:,} instalments in "
          f"{time.perf_counter() - started:.1f} s", flush=True)
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(text("ANALYZE"))
    floor_seconds = floor(engine, CLOSE_FROM - timedelta(days=1))
    timings = []
    entries = 0
    for offset in range(days):
        on = CLOSE_FROM + timedelta(days=offset)
        began = time.perf_counter()
        result = close_business_day(engine, on, chunk_size=250_000)
        timings.append(time.perf_counter() - began)
        entries += result.journal_entries
        assert result.loans > 0
    engine.dispose()
    best = min(timings)
    return {"label": label, "loans": loans, "days": days, "eod_seconds": timings,
            "journal_entries": entries, "floor_seconds": floor_seconds,
            "loans_per_second": loans / best, "ratio_to_floor": best / floor_seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loans", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--postgres-url",
                        default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--sqlite-path", default="var/bench/eod.sqlite")
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL database")
    args = parser.parse_args()
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
    rng = random.Random(42)
    states = templates(400, rng)
    print(f"reference close_day (pure Python, per loan): {reference_rate(states, 20_000):,.0f} "
          "loans/s", flush=True)
    results = []
    if args.backend in ("sqlite", "both"):
        path = Path(args.sqlite_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        results.append(run(f"sqlite:///{path}", args.loans, args.days, "sqlite", states))
    if args.backend in ("postgresql", "both"):
        results.append(run_postgres(args.postgres_url, args.loans, args.days, states,
                                    args.keep))
    for r in results:
        times = ", ".join(f"{s:.2f}" for s in r["eod_seconds"])
        print(f"[{r['label']}] close of business for {r['loans']:,} loans: {times} s per day; "
              f"{r['loans_per_second']:,.0f} loans/s (best day); journal entries "
              f"{r['journal_entries']:,}; floor (1 INSERT…SELECT + 1 UPDATE) "
              f"{r['floor_seconds']:.2f} s; ratio to floor {r['ratio_to_floor']:.2f}x")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory of this process (ru_maxrss, includes building the book): {peak:,.0f} MiB")


def run_postgres(url: str, loans: int, days: int, states: list[LoanState],
                 keep: bool = False) -> dict[str, Any]:
    import uuid

    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    name = f"lendsafe_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        target = make_url(url).set(database=name).render_as_string(hide_password=False)
        return run(target, loans, days, "postgresql", states)
    finally:
        if keep:
            print(f"kept database {name}")
        else:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
