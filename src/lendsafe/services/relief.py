"""Mass relief use cases: declare an event, apply it set-based, accept an offer, report.

``apply`` runs a handful of SQL statements per chunk of loan ids (one transaction each, no
per-loan round trips): record the covered loans, move their due dates (when the offer
defers), set the relief window on the loan rows, waive accrued
penalty with journal transfers, flag credit reporting, and publish one
``Change(action="relief.apply")`` per chunk with a ``ReliefApplied`` event per loan (audit,
ledger sealing and reminders listen). A chunk is guarded by the ``relief_applications``
row (status ``pending`` inside the transaction), so a run killed midway and run again
finishes where one clean run would. On PostgreSQL two chunks run at once, each on its own
connection (their id ranges are disjoint; the ledger sealer serialises them on its state
row); on SQLite, one after another. A relief deferral moves dates only, so the old
schedule is not copied: it is the current one with every instalment due on or after
``applied_day + deferral_days`` moved back ``deferral_days`` (``relief_applications``
keeps both); an accepted offer and every restructuring copy the old rows to
``schedule_versions``. The statements implement
``lendsafe.domain.lending.relief.apply_relief``; tests compare them with it.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, text, update

import lendsafe.domain.ledger.restructure_posting  # noqa: F401  (registers posting rules)
from lendsafe.adapters.db import restructure_tables as rt
from lendsafe.adapters.db import tables as t
from lendsafe.adapters.db.repository import load_loan, save_state
from lendsafe.domain import restructure_events as rev
from lendsafe.domain.calendar import day_number, from_day_number
from lendsafe.domain.lending.relief import (
    ReliefEvent,
    defer,
    overlap_problems,
    parse_event,
    window_problems,
)
from lendsafe.domain.money import currency, format_amount
from lendsafe.domain.problems import Problem, Refused
from lendsafe.services.lending import Change, LendingService
from lendsafe.services.restructuring import RestructuringService

PENDING = "rel.status = 'pending' AND rel.event_id = :e"


def _shift(column: str, dialect: str) -> str:
    """``column`` (a DATE) plus :shift days, on either backend."""
    if dialect == "postgresql":
        return f"({column} + CAST(:shift AS INTEGER))"
    return f"date({column}, :modifier)"


def _statements(event: ReliefEvent, dialect: str) -> list[tuple[str, str]]:
    covered = ["l.status = 'active'", "l.id BETWEEN :lo AND :hi", "l.last_closed_day = :p - 1",
               # NOT IN (a hashed subplan) rather than NOT EXISTS: PostgreSQL plans the anti
               # join as a nested loop over the growing, never-analysed applications table
               "l.id NOT IN (SELECT x.loan_id FROM relief_applications x WHERE x.event_id = :e "
               "AND x.loan_id BETWEEN :lo AND :hi)"]
    if event.regions:
        covered.append("b.region IN :regions")
    if event.segments:
        covered.append("l.product_id IN :segments")
    chosen = "loans.id IN (SELECT rel.loan_id FROM relief_applications rel WHERE " + PENDING + ")"
    steps = [
        ("cover", "INSERT INTO relief_applications (event_id, loan_id, status, applied_day, "
         "principal_minor, arrears_minor, days_past_due, bucket, deferral_days) SELECT :e, l.id, "
         "'pending', :p, l.principal_outstanding_minor, l.arrears_minor, l.days_past_due, "
         "l.bucket, :shift FROM loans l JOIN borrowers b ON b.id = l.borrower_id WHERE "
         + " AND ".join(covered)),
        ("window", "UPDATE loans SET relief_from_day = :p, relief_until_day = :until, "
         f"version = version + 1{_cursor(event, dialect)} WHERE {chosen}"),
        ("flags", "INSERT INTO credit_reporting_flags (loan_id, flag, from_day, until_day, "
         "suppress_negative, source) SELECT rel.loan_id, 'relief', :p, :until, :suppress, :ref "
         f"FROM relief_applications rel WHERE {PENDING}"),
    ]
    if event.offer.waive_penalty:
        steps += _penalty_statements(chosen)
    if event.offer.deferral_days and event.mode == "automatic":
        steps += _deferral_statements(chosen, dialect)
    return steps


def _penalty_statements(chosen: str) -> list[tuple[str, str]]:
    return [
        ("penalty:journal", "INSERT INTO journal_entries (business_day, loan_id, kind, "
         "debit_account, credit_account, amount_minor, reference) SELECT :p, id, "
         "'waiver_penalty', '5000', '1130', penalty_recognized_minor - penalty_paid_minor, :ref "
         f"FROM loans WHERE {chosen} AND penalty_recognized_minor > penalty_paid_minor"),
        ("penalty", "UPDATE loans SET penalty_recognized_minor = penalty_paid_minor "
         f"WHERE {chosen} AND penalty_recognized_minor > penalty_paid_minor"),
    ]


def _deferral_statements(chosen: str, dialect: str) -> list[tuple[str, str]]:
    later = "installments.seq > loans.cur_seq"
    return [
        ("shift", "UPDATE installments SET due_day = installments.due_day + :shift, "
         f"due_date = {_shift('installments.due_date', dialect)}, "
         f"start_day = CASE WHEN {later} THEN installments.start_day + :shift "
         "ELSE installments.start_day END, "
         f"period_start = CASE WHEN {later} THEN {_shift('installments.period_start', dialect)} "
         "ELSE installments.period_start END FROM loans WHERE loans.id = installments.loan_id "
         f"AND installments.due_day >= :p AND {chosen}"),
    ]


def _cursor(event: ReliefEvent, dialect: str) -> str:
    """Loan-row columns a deferral moves (set in the same UPDATE as the window)."""
    if not (event.offer.deferral_days and event.mode == "automatic"):
        return ""
    return (", cur_start_day = CASE WHEN cur_seq IS NULL THEN cur_start_day WHEN "
            "last_closed_day > cur_start_day THEN last_closed_day ELSE cur_start_day END, "
            "cur_base_minor = CASE WHEN cur_seq IS NULL THEN cur_base_minor "
            "ELSE cur_recognized_minor END, cur_due_day = cur_due_day + :shift, "
            "oldest_unpaid_due_day = CASE WHEN oldest_unpaid_due_day >= :p THEN "
            "oldest_unpaid_due_day + :shift ELSE oldest_unpaid_due_day END, "
            "maturity_date = CASE WHEN cur_seq IS NULL THEN maturity_date ELSE "
            f"{_shift('maturity_date', dialect)} END")


class ReliefService:
    """Relief events over one database."""

    def __init__(self, lending: LendingService, chunk_size: int = 20_000,
                 workers: int = 2) -> None:
        self.lending = lending
        self.engine = lending.engine
        self.chunk_size = chunk_size
        # PostgreSQL: chunks (disjoint id ranges, one transaction each) run on this many
        # connections at once, one server process per core; ledger sealing serialises on
        # its state row as concurrent payments do. SQLite has one writer: one at a time.
        self.workers = workers if self.engine.dialect.name == "postgresql" else 1

    def events(self, connection: Connection) -> list[tuple[int, ReliefEvent]]:
        """Every declared event."""
        rows = connection.execute(select(rt.relief_events.c.id, rt.relief_events.c.definition)
                                  .order_by(rt.relief_events.c.id)).all()
        return [(int(i), parse_event(json.loads(d))) for i, d in rows]

    def event(self, connection: Connection, event_id: int) -> ReliefEvent:
        """One event (LookupError when unknown)."""
        row = connection.execute(select(rt.relief_events.c.definition).where(
            rt.relief_events.c.id == event_id)).scalar()
        if row is None:
            raise LookupError(f"relief event {event_id} does not exist")
        return parse_event(json.loads(row))

    def declare(self, path_or_event: Path | ReliefEvent, actor: str = "cli") -> dict[str, Any]:
        """Declare an event from a TOML file (overlapping events are refused)."""
        event = path_or_event if isinstance(path_or_event, ReliefEvent) else parse_event(
            tomllib.loads(Path(path_or_event).read_text("utf-8")))
        with self.engine.begin() as connection:
            problems = overlap_problems(event, self.events(connection))
            if problems:
                raise Refused(problems)
            from lendsafe.services.audit import micros

            event_id = int(connection.execute(insert(rt.relief_events).values(
                name=event.name, definition=json.dumps(event.document(), sort_keys=True),
                starts_day=day_number(event.starts_on), ends_day=day_number(event.ends_on),
                declared_by=actor, declared_micros=micros(self.lending.clock()),
            )).inserted_primary_key[0])  # type: ignore[index]
            on = self.lending.open_date(connection)
            self.lending.publish(Change(connection, "relief.declare", actor, on, (),
                                        f"relief:{event_id}"))
        return {"event_id": event_id, **event.document()}

    def apply(self, event_id: int, actor: str = "cli",
              progress: Callable[[int], None] | None = None) -> dict[str, Any]:
        """Apply the event to every covered loan, chunk by chunk (see the module docstring)."""
        with self.engine.connect() as connection:
            event = self.event(connection, event_id)
            on = self.lending.open_date(connection)
            bounds = connection.execute(text("SELECT MIN(id), MAX(id) FROM loans")).one()
        problems = window_problems(event, on)
        if problems:
            raise Refused(problems)
        ranges = [] if bounds[0] is None else [
            (lo, min(lo + self.chunk_size - 1, int(bounds[1])))
            for lo in range(int(bounds[0]), int(bounds[1]) + 1, self.chunk_size)]
        covered = 0
        if self.workers == 1 or len(ranges) < 2:  # SQLite (an in-memory one is per thread)
            for lo, hi in ranges:
                covered += self._chunk(event_id, event, on, lo, hi, actor)
                if progress is not None:
                    progress(hi - lo + 1)
            return self._applied(event_id, event, on, covered)
        with ThreadPoolExecutor(min(self.workers, len(ranges))) as pool:
            running = {pool.submit(self._chunk, event_id, event, on, lo, hi, actor): hi - lo + 1
                       for lo, hi in ranges}
            try:
                for done in as_completed(running):
                    covered += done.result()  # the first failure stops the run (see above)
                    if progress is not None:
                        progress(running[done])
            except BaseException:
                for future in running:
                    future.cancel()  # chunks not started stay unapplied; a rerun does them
                raise
        return self._applied(event_id, event, on, covered)

    @staticmethod
    def _applied(event_id: int, event: ReliefEvent, on: date, covered: int) -> dict[str, Any]:
        return {"event_id": event_id, "business_date": on.isoformat(), "loans_covered": covered,
                "mode": event.mode, "deferral_days": event.offer.deferral_days}

    def _chunk(self, event_id: int, event: ReliefEvent, on: date, lo: int, hi: int,
               actor: str) -> int:
        with self.engine.begin() as connection:
            dialect = connection.dialect.name
            params = self._params(event_id, event, on, lo, hi)
            for name, sql in _statements(event, dialect):
                statement = text(sql)
                if name == "cover":
                    statement = statement.bindparams(*[bindparam(k, expanding=True) for k in (
                        "regions", "segments") if k in params])
                connection.execute(statement, params)
            loans = list(connection.execute(select(rt.relief_applications.c.loan_id).where(
                rt.relief_applications.c.event_id == event_id,
                rt.relief_applications.c.status == "pending")).scalars())
            status = "applied" if event.mode == "automatic" else "offered"
            connection.execute(update(rt.relief_applications).where(
                rt.relief_applications.c.event_id == event_id,
                rt.relief_applications.c.status == "pending").values(status=status))
            if loans:
                shift = event.offer.deferral_days if event.mode == "automatic" else 0
                offered = event.mode != "automatic"
                changes = tuple(rev.ReliefApplied(i, on, event_id, shift, offered)
                                for i in loans)
                self.lending.publish(Change(connection, "relief.apply", actor, on, changes,
                                            f"relief:{event_id}"))
        return len(loans)

    @staticmethod
    def _params(event_id: int, event: ReliefEvent, on: date, lo: int, hi: int
                ) -> dict[str, Any]:
        days = event.offer.deferral_days
        params: dict[str, Any] = {
            "e": event_id, "p": day_number(on), "until": day_number(event.ends_on), "lo": lo,
            "hi": hi, "shift": days, "modifier": f"+{days} days", "ref": f"relief:{event_id}",
            "suppress": int(event.offer.suppress_negative_reporting)}
        if event.regions:
            params["regions"] = sorted(event.regions)
        if event.segments:
            params["segments"] = sorted(event.segments)
        return params

    def accept(self, event_id: int, loan_id: int, actor: str) -> dict[str, Any]:
        """A borrower accepts an offered deferral (window and flags are already in place)."""
        with self.engine.begin() as connection:
            event = self.event(connection, event_id)
            offered = connection.execute(select(rt.relief_applications.c.status).where(
                rt.relief_applications.c.event_id == event_id,
                rt.relief_applications.c.loan_id == loan_id)).scalar()
            if offered != "offered":
                raise Refused([Problem("relief.not_offered", f"loan {loan_id} has no open "
                                       f"offer under relief event {event_id}")])
            record = load_loan(connection, loan_id, for_update=True)
            on = self.lending.open_date(connection)
            reference = f"relief:{event_id}"
            RestructuringService._keep_history(connection, record.state, reference, on)
            after = defer(record.state, event.offer.deferral_days)
            save_state(connection, after, was=record.state)
            RestructuringService._loan_facts(connection, after)
            connection.execute(update(rt.relief_applications).where(
                rt.relief_applications.c.event_id == event_id,
                rt.relief_applications.c.loan_id == loan_id).values(status="accepted"))
            change = rev.ReliefApplied(loan_id, on, event_id, event.offer.deferral_days)
            self.lending.publish(Change(connection, "relief.accept", actor, on, (change,),
                                        reference))
        return {"event_id": event_id, "loan_id": loan_id, "status": "accepted"}

    def report(self, event_id: int) -> dict[str, Any]:
        """Uptake, balances under relief, and how covered loans performed after."""
        a, loans = rt.relief_applications, t.loans
        joined = a.join(loans, loans.c.id == a.c.loan_id)
        with self.engine.connect() as connection:
            event = self.event(connection, event_id)
            on = self.lending.open_date(connection)
            by_status = {str(k): int(v) for k, v in connection.execute(select(
                a.c.status, func.count()).where(a.c.event_id == event_id).group_by(a.c.status))}
            rows = list(connection.execute(select(
                loans.c.currency, loans.c.status, loans.c.bucket, func.count(),
                func.coalesce(func.sum(a.c.principal_minor), 0),
                func.coalesce(func.sum(loans.c.principal_outstanding_minor), 0),
                func.coalesce(func.sum(a.c.arrears_minor), 0),
                func.coalesce(func.sum(loans.c.arrears_minor), 0),
            ).select_from(joined).where(a.c.event_id == event_id).group_by(
                loans.c.currency, loans.c.status, loans.c.bucket)).all())
        return _report_document(event_id, event, on, by_status, rows)


def _report_document(event_id: int, event: ReliefEvent, on: date, by_status: dict[str, int],
                     rows: list[Any]) -> dict[str, Any]:
    offered = sum(by_status.values())
    taken = by_status.get("applied", 0) + by_status.get("accepted", 0)
    return {
        "event_id": event_id, "event": event.document(), "as_of": on.isoformat(),
        "phase": "during" if on <= event.ends_on else "after",
        "uptake": {"covered": offered, "by_status": by_status,
                   "deferral_taken": taken if event.offer.deferral_days else 0,
                   "rate": None if not offered else f"{taken / offered:.4f}"},
        "performance": [
            {"currency": c, "status": s, "bucket": b, "loans": int(n),
             "principal_at_relief": format_amount(int(p0), currency(c)),
             "principal_now": format_amount(int(p1), currency(c)),
             "arrears_at_relief": format_amount(int(r0), currency(c)),
             "arrears_now": format_amount(int(r1), currency(c))}
            for c, s, b, n, p0, p1, r0, r1 in rows],
        "balances_under_relief": {
            c: format_amount(sum(int(r[5]) for r in rows if r[0] == c and r[1] == "active"),
                             currency(c)) for c in sorted({r[0] for r in rows})},
        "relief_until": from_day_number(day_number(event.ends_on)).isoformat(),
    }
