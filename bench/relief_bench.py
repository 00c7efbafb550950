"""Mass relief for N loans (default 100,000): declare an event, apply it, report.

Usage:  .venv/bin/python bench/relief_bench.py [--loans N] [--backend sqlite|postgresql|both]
            [--postgres-url URL] [--chunk C]

Builds the close-of-business benchmark's book (loans of every shape, some in arrears with
penalty), wires the real listeners (audit log, ledger sealer, reminders) through
``bootstrap.build``, declares a 90-day deferral with penalty waiver for the borrowers'
region, and times ``ReliefService.apply`` (every covered loan: relief window, old schedule
kept, due dates moved, penalty waived with journal transfers, credit flags, one audited
``Change`` per chunk sealed into the ledger). Beside it, in the same process, it times the
floor: one UPDATE of every covered loan row and one of every instalment row (the least any
set-based deferral must write), and prints the ratio.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select, text
from sqlalchemy import event as sa_event
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))

from eod_bench import CLOSE_FROM, populate, templates
from lendsafe.adapters.db import control_tables as ct
from lendsafe.adapters.db import reminder_dispatch_store as dstore
from lendsafe.adapters.db import restructure_tables as rt
from lendsafe.adapters.db import tables as t
from lendsafe.bootstrap import build
from lendsafe.config import Settings
from lendsafe.domain.lending.relief import ReliefEvent, ReliefOffer
from lendsafe.services.relief import ReliefService

PLANNING_CLOCK = datetime.combine(CLOSE_FROM, datetime.min.time(), UTC)  # 08:00 in Shanghai


def statement_log(engine: Any) -> dict[str, list[float]]:
    """Seconds spent in each kind of statement (keyed by its first 90 characters) from now on:
    a cursor-execute listener pair on the engine (``--statements``)."""
    spent: dict[str, list[float]] = {}

    @sa_event.listens_for(engine, "before_cursor_execute")
    def _start(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        conn.info["bench_started"] = time.perf_counter()

    @sa_event.listens_for(engine, "after_cursor_execute")
    def _stop(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "bench_started" in conn.info:
            key = " ".join(statement.split())[:90]
            entry = spent.setdefault(key, [0.0, 0])
            entry[0] += time.perf_counter() - conn.info.pop("bench_started")
            entry[1] += 1

    return spent


def run(url: str, loans: int, chunk: int, label: str, workdir: Path,
        statements: bool = False) -> dict[str, Any]:
    settings = Settings.from_env({"LENDSAFE_DATABASE_URL": url,
                                  "LENDSAFE_DATA_DIR": str(workdir)})
    container = build(settings)
    engine = container.engine
    started = time.perf_counter()
    rows = populate(engine, templates(400, random.Random(42)), loans)
    with engine.begin() as connection:
        # one borrower per loan, as in a real book (the close-of-business book has one
        # borrower for every loan, which would make every contact look-up trivially cheap)
        connection.execute(text(
            "INSERT INTO borrowers (id, external_ref, region, created_at) SELECT l.id, "
            "'B' || CAST(l.id AS VARCHAR(20)), 'GD', b.created_at FROM loans l, borrowers b "
            "WHERE b.id = 1 AND l.id > 1"))
        connection.execute(text("UPDATE loans SET borrower_id = id"))
        connection.execute(text("UPDATE borrowers SET region = 'GD'"))
        connection.execute(t.business_calendar.insert().values(id=1, open_date=CLOSE_FROM))
        if engine.dialect.name == "postgresql":
            connection.execute(text("ANALYZE"))
    print(f"[{label}] built {loans:,} loans / {rows:,} instalments in "
          f"{time.perf_counter() - started:.1f} s", flush=True)
    planned = plan_reminders(container)
    print(f"[{label}] contacts for every borrower; {planned:,} reminder steps planned over the "
          "horizon (the outbox as close of business leaves it)", flush=True)
    relief = ReliefService(container.lending, chunk_size=chunk)
    event = ReliefEvent("bench flood", date(2026, 3, 1), date(2026, 5, 31), frozenset({"GD"}),
                        offer=ReliefOffer(deferral_days=90, waive_penalty=True))
    event_id = relief.declare(event)["event_id"]
    settle(engine)
    spent = statement_log(engine) if statements else {}
    started = time.perf_counter()
    result = relief.apply(event_id)
    seconds = time.perf_counter() - started
    for key, (total, count) in sorted(spent.items(), key=lambda kv: -kv[1][0])[:12]:
        print(f"[{label}]   {total:6.2f} s  {int(count):4d}x  {key}", flush=True)
    spent.clear()
    started = time.perf_counter()
    relief.report(event_id)
    report_seconds = time.perf_counter() - started
    with engine.connect() as connection:
        journal = connection.execute(select(func.count()).select_from(t.journal).where(
            t.journal.c.reference == f"relief:{event_id}")).scalar_one()
        audited = connection.execute(select(func.count()).select_from(ct.audit_records).where(
            ct.audit_records.c.action == "relief.apply")).scalar_one()
        history = connection.execute(select(func.count()).select_from(
            rt.schedule_versions)).scalar_one()
        outbox = dict(connection.execute(text(
            "SELECT CASE WHEN step_key LIKE 'ntc:%' THEN 'notices' ELSE status END, COUNT(*) "
            "FROM reminders GROUP BY 1")).all())
    floor_seconds = floor(engine)
    spent.clear()
    container.engine.dispose()
    return {"label": label, "loans": result["loans_covered"], "seconds": seconds,
            "report_seconds": report_seconds, "journal": journal, "audit_records": audited,
            "history_rows": history, "floor": floor_seconds, "outbox": outbox}


def plan_reminders(container: Any) -> int:
    """Give every borrower a contact (SMS and app push, Shanghai time) and plan the
    reminders the closes of business would have planned up to the horizon, with the
    reminder clock on the book's business date, so relief has a real outbox to re-plan."""
    with container.engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO reminder_contacts (borrower_id, time_zone, language, quiet_hours, "
            "opt_outs, updated_at) SELECT id, 'Asia/Shanghai', CASE WHEN id % 10 = 0 THEN "
            "'en' ELSE 'zh' END, NULL, '', :at FROM borrowers"), {"at": PLANNING_CLOCK})
        for channel in ("sms", "app_push"):
            connection.execute(text(
                "INSERT INTO reminder_addresses (borrower_id, channel, address_sealed, key_id) "
                "SELECT id, :channel, 'bench-' || CAST(id AS VARCHAR(20)), 'plain' "
                "FROM borrowers"), {"channel": channel})
        if connection.dialect.name == "postgresql":
            connection.execute(text("ANALYZE reminder_contacts, reminder_addresses"))
    reminders = container.reminders
    reminders.clock = lambda: PLANNING_CLOCK
    planned = 0
    with container.engine.begin() as connection:
        for days in range(reminders.settings.horizon_days + 1):
            planned += reminders.plan_day(connection, CLOSE_FROM + timedelta(days=days))
        # the statistics autovacuum would have gathered by the time an event is declared
        # (`lendsafe remind plan` runs the same ANALYZE)
        dstore.analyze(connection)
    return planned


def settle(engine: Any) -> None:
    """PostgreSQL: write out what building the book left dirty (CHECKPOINT), so a timed run
    does not pay for the bulk load's checkpoint; the apply and the floor start alike."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("CHECKPOINT"))


def floor(engine: Any) -> float:
    """One UPDATE of every loan row and one of every instalment row (rolled back)."""
    settle(engine)
    started = time.perf_counter()
    with engine.begin() as connection:
        connection.execute(text("UPDATE loans SET relief_until_day = relief_until_day + 1"))
        connection.execute(text("UPDATE installments SET due_day = due_day + 1"))
        connection.rollback()
    return time.perf_counter() - started


def run_postgres(url: str, loans: int, chunk: int, workdir: Path,
                 statements: bool = False) -> dict[str, Any]:
    name = f"lendsafe_relief_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        target = make_url(url).set(database=name).render_as_string(hide_password=False)
        return run(target, loans, chunk, "postgresql", workdir, statements)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loans", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=20_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--postgres-url",
                        default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--workdir", default="var/bench/relief")
    parser.add_argument("--statements", action="store_true",
                        help="print the apply's 12 costliest kinds of statement")
    args = parser.parse_args()
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    results = []
    if args.backend in ("sqlite", "both"):
        path = workdir / "relief.sqlite"
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        results.append(run(f"sqlite:///{path}", args.loans, args.chunk, "sqlite", workdir,
                           args.statements))
    if args.backend in ("postgresql", "both"):
        results.append(run_postgres(args.postgres_url, args.loans, args.chunk, workdir,
                                    args.statements))
    for r in results:
        print(f"[{r['label']}] relief apply for {r['loans']:,} loans: {r['seconds']:.2f} s "
              f"({r['loans'] / r['seconds']:,.0f} loans/s); journal entries {r['journal']:,}; "
              f"audit records {r['audit_records']}; schedule history rows "
              f"{r['history_rows']:,}; report {r['report_seconds']:.2f} s; floor (2 UPDATEs) "
              f"{r['floor']:.2f} s; ratio to floor {r['seconds'] / r['floor']:.2f}x")
        print(f"[{r['label']}] outbox after apply: "
              + ", ".join(f"{k} {v:,}" for k, v in sorted(r["outbox"].items())))


if __name__ == "__main__":
    main()
