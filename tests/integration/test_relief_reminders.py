"""Relief and restructuring re-plan reminders: no step is left on an old due date, a change
plans only the planning horizon, and the closes of business that follow plan (or revive)
every later step - checked day by day against a second computation from the instalments
themselves, on SQLite and PostgreSQL. Borrowers are told of relief through the reminder
channels, checked from the file channel's own record."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from lendsafe.adapters.channels.file_channel import FileChannel
from lendsafe.adapters.db import tables as t
from lendsafe.adapters.db.reminder_store import OPEN_STATUSES, outstanding_amount
from lendsafe.adapters.db.reminder_tables import reminders
from lendsafe.domain.lending.product import Term, TermUnit
from lendsafe.domain.lending.relief import ReliefEvent, ReliefOffer
from lendsafe.domain.lending.restructure import (
    ChangeKind,
    ChangeRequest,
    HolidayInterest,
)
from lendsafe.services.lending import LendingService
from lendsafe.services.relief import ReliefService
from lendsafe.services.reminder_dispatch import Worker
from lendsafe.services.reminders import Contact, ReminderService
from lendsafe.services.restructuring import RestructuringService
from tests.servicing_helpers import open_policy

CLOCK = datetime(2026, 3, 1, 16, 0, tzinfo=UTC)  # before every send date of the book
BOOKS = [("cn-bullet", 300_000, Term(30, TermUnit.DAYS)),
         ("cn-annuity", 1_200_000, Term(6, TermUnit.MONTHS)),
         ("cn-weekly", 300_000, Term(12, TermUnit.WEEKS)),
         ("cn-biweekly", 900_000, Term(12, TermUnit.WEEKS))]
EVENT = ReliefEvent("typhoon 2026", date(2026, 3, 20), date(2026, 4, 30), frozenset({"GD"}),
                    offer=ReliefOffer(deferral_days=30, waive_penalty=True))
OPEN_POLICY = open_policy()
Step = tuple[int, int, str, date, date]  # loan, instalment, step, due date, send date


def _setup(service: LendingService) -> tuple[ReminderService, list[int], list[int]]:
    rs = ReminderService(service.engine, clock=lambda: CLOCK)
    service.subscribe(rs.on_change)
    covered, outside = [], []
    for n, (product, amount, term) in enumerate(BOOKS * 2):
        region = "GD" if n % 2 == 0 else "FJ"
        ref = f"r{n}"
        loan_id = service.book(ref, product, amount, term, region=region)
        rs.set_contact(ref, Contact("Asia/Shanghai", "zh", {"sms": f"+86138000000{n:02d}"}))
        (covered if region == "GD" else outside).append(loan_id)
    return rs, covered, outside


def _expected(engine: Engine, rs: ReminderService) -> set[Step]:
    """Second computation: every policy step of every unsettled instalment, from the
    instalment rows alone (the clock is before every send date, so none is past)."""
    i = t.installments.c
    owed = (i.principal_due_minor + i.interest_due_minor + i.fee_due_minor
            - i.principal_paid_minor - i.interest_paid_minor - i.fee_paid_minor)
    with engine.connect() as connection:
        rows = connection.execute(select(i.loan_id, i.seq, i.due_date).join(
            t.loans, t.loans.c.id == i.loan_id).where(owed > 0, t.loans.c.status == "active"))
        return {(r.loan_id, r.seq, s.code, r.due_date, r.due_date + timedelta(s.offset_days))
                for r in rows for s in rs.policy.steps}


def _planned(engine: Engine, statuses: tuple[str, ...] = OPEN_STATUSES) -> set[Step]:
    r = reminders.c
    with engine.connect() as connection:
        rows = connection.execute(select(r.loan_id, r.installment_seq, r.step_code, r.due_date,
                                         r.send_date).where(r.status.in_(statuses),
                                                            r.step_key.like("rem:%")))
        return {tuple(row) for row in rows}  # type: ignore[misc]


def _within(steps: set[Step], since: date, until: date) -> set[Step]:
    return {s for s in steps if since <= s[4] <= until}


def _on(steps: set[Step], day: date) -> set[Step]:
    return {s for s in steps if s[4] == day}


def test_mass_relief_replans_the_horizon_and_eod_plans_every_later_step(
        service: LendingService) -> None:
    rs, covered, outside = _setup(service)
    engine = service.engine
    since, until = rs.horizon(service.open_date())
    assert _planned(engine) == _within(_expected(engine, rs), since, until)  # the horizon
    service.close_business(date(2026, 3, 24))
    relief = ReliefService(service, chunk_size=3)
    event_id = relief.declare(EVENT)["event_id"]
    on = service.open_date()
    assert relief.apply(event_id)["loans_covered"] == len(covered)

    expected, planned = _expected(engine, rs), _planned(engine)
    assert not planned - expected, "an open step still points at an old due date"
    since, until = rs.horizon(on)
    assert {s for s in _within(expected, since, until) if s[0] in covered} <= planned
    with engine.connect() as connection:
        moved = connection.execute(select(reminders.c.loan_id).where(
            reminders.c.status == "cancelled", reminders.c.reason == "schedule changed")
        ).scalars().all()
    assert set(moved) <= set(covered)  # outside loans keep their steps
    assert {s for s in planned if s[0] in outside} == {  # planned through today by the
        s for s in _within(expected, date(2026, 1, 1), on) if s[0] in outside}  # closes

    for _ in range(200):  # every later day: the close of business before it plans it
        service.close_business(on)
        tomorrow = on + timedelta(days=1)
        assert _on(_planned(engine), tomorrow) == _on(_expected(engine, rs), tomorrow), tomorrow
        on = tomorrow
    assert _planned(engine) >= {s for s in _expected(engine, rs) if s[4] > until}


def test_restructuring_and_accepted_relief_replan_the_loan_at_once(
        service: LendingService) -> None:
    rs, covered, _ = _setup(service)
    engine = service.engine
    offered = ReliefEvent("offered 2026", date(2026, 3, 20), date(2026, 4, 30),
                          frozenset({"GD"}), mode="offer",
                          offer=ReliefOffer(deferral_days=21, waive_penalty=True))
    service.close_business(date(2026, 3, 20))
    relief = ReliefService(service)
    event_id = relief.declare(offered)["event_id"]
    relief.apply(event_id)
    since, until = rs.horizon(service.open_date())
    assert _planned(engine) == _within(_expected(engine, rs), since, until)  # nothing moved
    relief.accept(event_id, covered[1], actor="borrower")
    expected = _expected(engine, rs)
    assert _planned(engine) == _within(expected, since, until)  # re-planned in place
    assert any(s[0] == covered[1] and s[4] > date(2026, 6, 1) for s in expected)
    changes = RestructuringService(service, OPEN_POLICY)
    before = {s for s in expected if s[0] == covered[3]}
    with engine.begin() as connection:  # two instalments deferred: later due dates move
        record, result = changes.compute(connection, covered[3], ChangeRequest(
            ChangeKind.DEFERRAL, count=2, holiday_interest=HolidayInterest.CAPITALISED),
            lock=True)
        changes.apply(connection, record, result, "test")
    expected = _expected(engine, rs)
    assert {s for s in expected if s[0] == covered[3]} != before
    assert _planned(engine) == _within(expected, since, until)  # in the change's transaction


def _first_unsettled(engine: Engine, loan_id: int) -> date:
    i = t.installments.c
    owed = (i.principal_due_minor + i.interest_due_minor + i.fee_due_minor
            - i.principal_paid_minor - i.interest_paid_minor - i.fee_paid_minor)
    with engine.connect() as connection:
        return connection.execute(select(i.due_date).where(i.loan_id == loan_id, owed > 0)
                                  .order_by(i.seq).limit(1)).scalar_one()


@pytest.mark.parametrize("mode", ["automatic", "offer"])
def test_borrowers_are_told_of_relief_through_the_reminder_channels(
        service: LendingService, tmp_path: Path, mode: str) -> None:
    rs, covered, _ = _setup(service)
    engine = service.engine
    event = ReliefEvent("typhoon 2026", date(2026, 3, 2), date(2026, 4, 30), frozenset({"GD"}),
                        mode=mode, offer=ReliefOffer(deferral_days=30, waive_penalty=True))
    relief = ReliefService(service, chunk_size=3)
    event_id = relief.declare(event)["event_id"]
    relief.apply(event_id)
    code = "RLF-A" if mode == "automatic" else "RLF-O"
    r = reminders.c
    with engine.connect() as connection:
        rows = connection.execute(select(r.loan_id, r.step_code, r.status, r.due_date).where(
            r.step_key.like(f"ntc:relief:{event_id}:%"))).all()
    assert sorted(row.loan_id for row in rows) == sorted(covered)  # one each, none outside
    assert {(row.step_code, row.status) for row in rows} == {(code, "pending")}
    assert all(row.due_date == _first_unsettled(engine, row.loan_id) for row in rows)
    with engine.begin() as connection:  # planning twice is a no-op
        assert rs.plan_notices(connection, code, f"relief:{event_id}", covered) == 0

    channel = FileChannel(tmp_path / "sent.jsonl")  # the provider's own record
    at = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai, after quiet hours
    for _ in range(2):  # a second worker run sends nothing again
        Worker(engine, dict.fromkeys(("sms", "app_push", "email", "voice"), channel),
               clock=lambda: at).run(until_idle=True, sleep=lambda _s: None)
    sent = [m for m in channel.records() if m["step"] == code]
    assert sorted(int(str(m["loan_id"]).lstrip("L")) for m in sent) == sorted(covered)
    for message in sent:
        loan_id = int(str(message["loan_id"]).lstrip("L"))
        due = _first_unsettled(engine, loan_id)
        assert f"{due.year}年{due.month}月{due.day}日" in str(message["body"])
        assert message["language"] == "zh" and "纾困" in str(message["body"])


def test_a_payment_before_the_send_never_loses_a_relief_notice(
        service: LendingService, tmp_path: Path) -> None:
    """The notice quotes the loan's next instalment; paying that instalment off before the
    notice goes out must not cancel it (a legally required notice is told once, always)."""
    _, covered, _ = _setup(service)
    engine = service.engine
    event = ReliefEvent("flood 2026", date(2026, 3, 2), date(2026, 4, 30), frozenset({"GD"}),
                        offer=ReliefOffer(deferral_days=30, waive_penalty=True))
    relief = ReliefService(service, chunk_size=3)
    event_id = relief.declare(event)["event_id"]
    relief.apply(event_id)
    i, r = t.installments.c, reminders.c
    owed = outstanding_amount()
    with engine.connect() as connection:  # a loan with a later instalment to quote next
        paid = connection.execute(select(i.loan_id).where(i.loan_id.in_(covered), owed > 0)
                                  .group_by(i.loan_id).having(func.count() > 1)
                                  .order_by(i.loan_id).limit(1)).scalar_one()
        notice = r.step_key == f"ntc:relief:{event_id}:{paid}"
        due = connection.execute(select(r.due_date).where(notice)).scalar_one()
    service.close_business(due - timedelta(days=1))  # the named instalment is due today
    with engine.connect() as connection:
        first = connection.execute(select(owed).where(i.loan_id == paid, i.due_date == due)
                                   ).scalar_one()
    service.pay(paid, int(first), "pay-the-quoted-instalment")
    with engine.connect() as connection:  # the instalment the notice names is settled now
        named = connection.execute(select(owed).select_from(t.installments.join(
            reminders, (r.loan_id == i.loan_id) & (r.installment_seq == i.seq))).where(
            notice)).scalar_one()
    assert named <= 0
    with engine.connect() as connection:
        status = connection.execute(select(r.status).where(notice)).scalar_one()
    assert status == "pending"  # the payment's cancel_stale left it alone
    channel = FileChannel(tmp_path / "sent.jsonl")
    at = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
    Worker(engine, dict.fromkeys(("sms", "app_push", "email", "voice"), channel),
           clock=lambda: at).run(until_idle=True, sleep=lambda _s: None)
    told = {int(str(m["loan_id"]).lstrip("L")) for m in channel.records() if m["step"] == "RLF-A"}
    assert told == set(covered)


def test_a_revived_step_starts_afresh_at_its_new_time(service: LendingService) -> None:
    rs, _, _ = _setup(service)
    engine = service.engine
    service.close_business(date(2026, 3, 12))  # the closes plan the steps of these days
    r = reminders.c
    with engine.begin() as connection:  # a step tried once, then its due date moved away
        step = connection.execute(select(r.id, r.send_date, r.planned_at).where(
            r.status == "pending").order_by(r.id).limit(1)).one()
        connection.execute(reminders.update().where(r.id == step.id).values(
            tries=1, channel_index=1, round=1, due_at=datetime(2026, 1, 1, tzinfo=UTC),
            status="cancelled", reason="schedule changed"))
    with engine.begin() as connection:  # the close of business before its day plans it
        assert rs.plan_day(connection, step.send_date) == 1
        assert rs.plan_day(connection, step.send_date) == 0  # planning twice: nothing new
        row = connection.execute(select(r.status, r.tries, r.channel_index, r.round, r.due_at,
                                        r.planned_at).where(r.id == step.id)).one()
    assert (row.status, row.tries, row.channel_index, row.round) == ("pending", 0, 0, 0)
    assert row.due_at == row.planned_at  # not the old back-off time in the past
