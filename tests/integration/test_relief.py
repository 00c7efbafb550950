"""Mass relief: the set-based apply equals the pure reference; during the event covered
loans accrue no penalty and get no worse status; after it normal servicing resumes on the
new schedule (SQL close of business checked against ``close_day`` day by day); loans
outside the event are untouched; overlapping events are refused."""

from __future__ import annotations

import threading
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

import lendsafe.domain.ledger.restructure_posting  # noqa: F401
from lendsafe.adapters.db import control_tables as ct
from lendsafe.adapters.db import restructure_tables as rt
from lendsafe.adapters.db import tables as t
from lendsafe.adapters.db.repository import load_loan, servicing_columns
from lendsafe.bootstrap import build
from lendsafe.domain import events as ev
from lendsafe.domain.lending.loan import LoanState, close_day
from lendsafe.domain.lending.product import Term, TermUnit
from lendsafe.domain.lending.relief import ReliefEvent, ReliefOffer, apply_relief
from lendsafe.domain.problems import Refused
from lendsafe.services.lending import Change, LendingService
from lendsafe.services.relief import ReliefService
from tests.integration.test_payment_reversal import assert_journal_balances, settings_with
from tests.servicing_helpers import journal_by_loan, posted

BOOKS = [("cn-bullet", 300_000, Term(30, TermUnit.DAYS)),
         ("cn-annuity", 1_200_000, Term(6, TermUnit.MONTHS)),
         ("cn-equal-principal", 1_000_000, Term(4, TermUnit.MONTHS)),
         ("cn-weekly", 300_000, Term(12, TermUnit.WEEKS)),
         ("cn-biweekly", 900_000, Term(12, TermUnit.WEEKS)),
         ("cn-interest-only", 800_000, Term(3, TermUnit.MONTHS))]
EVENT = ReliefEvent("flood 2026", date(2026, 4, 1), date(2026, 5, 15), frozenset({"GD"}),
                    offer=ReliefOffer(deferral_days=45, waive_penalty=True))


def _comparable(state: LoanState) -> dict[str, object]:
    return {**servicing_columns(state), "rows": state.installments}


def _book(service: LendingService) -> tuple[list[int], list[int]]:
    covered, outside = [], []
    for n, (product, amount, term) in enumerate(BOOKS * 2):
        region = "GD" if n % 2 == 0 else "FJ"
        loan_id = service.book(f"b{n}", product, amount, term, region=region)
        (covered if region == "GD" else outside).append(loan_id)
    return covered, outside


def test_relief_apply_and_servicing_during_and_after(service: LendingService) -> None:
    relief = ReliefService(service, chunk_size=5)
    covered, outside = _book(service)
    service.close_business(date(2026, 4, 14))  # most loans are now past due
    with service.engine.connect() as connection:
        reference = {i: load_loan(connection, i).state for i in covered + outside}
    expected = journal_by_loan(service.engine)
    event_id = relief.declare(EVENT)["event_id"]
    on = service.open_date()
    assert relief.apply(event_id)["loans_covered"] == len(covered)
    assert relief.apply(event_id)["loans_covered"] == 0  # a second run changes nothing
    for loan_id in covered:
        reference[loan_id], events = apply_relief(reference[loan_id], EVENT, event_id, on)
        expected[loan_id] += posted(list(events))
    _check_equal(service, reference)
    statuses: dict[int, tuple[int, str]] = {}
    resumed = set()
    for _ in range(120):
        service.close_business(on)
        for loan_id, state in reference.items():
            reference[loan_id], events = close_day(state, on)
            expected[loan_id] += posted(list(events))
            if loan_id in covered and on <= EVENT.ends_on:
                assert not any(isinstance(e, ev.PenaltyAccrued) for e in events), (loan_id, on)
                assert reference[loan_id].days_past_due <= statuses.get(
                    loan_id, (state.days_past_due, ""))[0], (loan_id, on)
                statuses[loan_id] = (reference[loan_id].days_past_due, reference[loan_id].bucket)
            elif loan_id in covered and any(isinstance(e, ev.PenaltyAccrued) for e in events):
                resumed.add(loan_id)  # normal servicing after the event
        _check_equal(service, reference)
        on += timedelta(days=1)
    assert journal_by_loan(service.engine) == expected
    assert len(resumed) >= len(covered) // 2, resumed
    report = relief.report(event_id)
    assert report["uptake"]["covered"] == len(covered) and report["phase"] == "after"


def _check_equal(service: LendingService, reference: dict[int, LoanState]) -> None:
    with service.engine.connect() as connection:
        for loan_id, state in reference.items():
            stored = load_loan(connection, loan_id)
            assert _comparable(stored.state) == _comparable(state), loan_id
            assert stored.maturity_date == state.installments[-1].due_date, loan_id


def test_overlapping_events_and_bad_dates_are_refused(service: LendingService) -> None:
    relief = ReliefService(service)
    relief.declare(EVENT)
    with pytest.raises(Refused) as refused:
        relief.declare(ReliefEvent("second", date(2026, 5, 1), date(2026, 6, 1)))
    assert refused.value.problems[0].code == "relief.overlap"
    other = relief.declare(ReliefEvent("elsewhere", date(2026, 5, 1), date(2026, 6, 1),
                                       frozenset({"FJ"})))
    with pytest.raises(Refused) as refused:  # the open date 2026-03-02 is before the event
        relief.apply(other["event_id"])
    assert refused.value.problems[0].code == "relief.window"
    with service.engine.connect() as connection:
        assert connection.execute(select(rt.relief_applications)).first() is None


def test_offered_relief_is_accepted_one_loan_at_a_time(service: LendingService) -> None:
    relief = ReliefService(service)
    covered, _ = _book(service)
    offer = ReliefEvent("offer", date(2026, 3, 1), date(2026, 4, 30), frozenset({"GD"}),
                        offer=ReliefOffer(deferral_days=30), mode="offer")
    event_id = relief.declare(offer)["event_id"]
    assert relief.apply(event_id)["loans_covered"] == len(covered)
    with service.engine.connect() as connection:
        before = load_loan(connection, covered[1]).state
    relief.accept(event_id, covered[1], "borrower")
    with service.engine.connect() as connection:
        after = load_loan(connection, covered[1]).state
    assert [r.due_date for r in after.installments] == [
        r.due_date + timedelta(days=30) for r in before.installments]
    assert after.relief_from == date(2026, 3, 2) and after.relief_until == date(2026, 4, 30)
    with pytest.raises(Refused, match="no open offer"):
        relief.accept(event_id, covered[1], "borrower")


def test_chunks_applied_at_once_keep_the_ledger_and_audit_whole(
        tmp_path: Path, database_url: str) -> None:
    """Every listener wired (audit, ledger sealing, reminders). On PostgreSQL two chunks
    run at once: a first listener holds each chunk's transaction open until the other has
    reached the same point, so both seal concurrently. Afterwards every covered loan is
    where the pure reference puts it, each chunk left one audit record, the journal
    balances and the verifiable log verifies."""
    container = build(settings_with(tmp_path, database_url))
    try:
        lending = container.lending
        lending.initialise(date(2026, 3, 2))
        relief = ReliefService(lending, chunk_size=3)
        meeting = threading.Barrier(2, timeout=30)
        chunks = []

        def hold(change: Change) -> None:
            if change.action == "relief.apply":
                chunks.append(change)
                if relief.workers > 1 and len(chunks) <= 2:
                    meeting.wait()  # both chunk transactions are open here

        lending.listeners.insert(0, hold)
        covered, outside = _book(lending)
        lending.close_business(date(2026, 4, 14))  # penalties to waive: journal transfers
        with container.engine.connect() as connection:
            reference = {i: load_loan(connection, i).state for i in covered + outside}
        event_id = relief.declare(EVENT)["event_id"]
        on = lending.open_date()
        assert relief.apply(event_id)["loans_covered"] == len(covered)
        assert relief.workers == (2 if container.engine.dialect.name == "postgresql" else 1)
        for loan_id in covered:
            reference[loan_id], _ = apply_relief(reference[loan_id], EVENT, event_id, on)
        _check_equal(lending, reference)
        with container.engine.connect() as connection:
            audited = connection.execute(select(func.count()).select_from(
                ct.audit_records).where(ct.audit_records.c.action == "relief.apply")).scalar()
            waived = connection.execute(select(func.count()).select_from(t.journal).where(
                t.journal.c.reference == f"relief:{event_id}")).scalar()
        assert audited == len(chunks) >= 2
        assert waived and waived > 0
        assert_journal_balances(container)
    finally:
        container.engine.dispose()


def test_a_chunk_that_fails_rolls_back_alone_and_a_rerun_finishes_the_event(
        tmp_path: Path, database_url: str) -> None:
    """One chunk's transaction fails (a listener raises) while others run: the run stops
    with the error, the failed chunk leaves nothing behind, and running the event again
    ends exactly where one clean run would, with the ledger whole."""
    container = build(settings_with(tmp_path, database_url))
    try:
        lending = container.lending
        lending.initialise(date(2026, 3, 2))
        relief = ReliefService(lending, chunk_size=3)
        seen: list[str] = []
        failing = threading.Lock()

        def fail_second(change: Change) -> None:
            if change.action == "relief.apply":
                with failing:
                    seen.append(change.target or "")
                    if len(seen) == 2:
                        raise RuntimeError("the disk filled up")

        lending.listeners.insert(0, fail_second)
        covered, outside = _book(lending)
        lending.close_business(date(2026, 4, 14))
        with container.engine.connect() as connection:
            reference = {i: load_loan(connection, i).state for i in covered + outside}
        event_id = relief.declare(EVENT)["event_id"]
        on = lending.open_date()
        with pytest.raises(RuntimeError, match="disk filled up"):
            relief.apply(event_id)
        with container.engine.connect() as connection:
            applied = connection.execute(select(func.count()).select_from(
                rt.relief_applications).where(rt.relief_applications.c.event_id == event_id)
            ).scalar()
            pending = connection.execute(select(func.count()).select_from(
                rt.relief_applications).where(rt.relief_applications.c.status == "pending")
            ).scalar()
        assert pending == 0 and 0 < (applied or 0) < len(covered)  # partly done, nothing half
        assert_journal_balances(container)
        lending.listeners.remove(fail_second)
        assert relief.apply(event_id)["loans_covered"] == len(covered) - (applied or 0)
        for loan_id in covered:
            reference[loan_id], _ = apply_relief(reference[loan_id], EVENT, event_id, on)
        _check_equal(lending, reference)
        assert relief.apply(event_id)["loans_covered"] == 0
        assert_journal_balances(container)
    finally:
        container.engine.dispose()
