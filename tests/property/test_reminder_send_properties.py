"""Properties of the outbox worker at send time, through the real worker and database.

* Quiet hours and caps are never broken at the instant a message really goes out, for any
  zone (DST changes included), borrower quiet hours, caps and schedule.
* A payment that settles an instalment before a step's time cancels the step: nothing is
  sent for it afterwards; a partial payment keeps the step and the message shows what is
  still owed.

Sends are observed by a recording adapter (the instant of each ``send``), not read back
from the outbox tables.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, insert, select

from lendsafe.adapters.channels import FakeProvider, OutboundMessage, SendResult
from lendsafe.adapters.db import reminder_dispatch_store as dstore
from lendsafe.adapters.db import reminder_store as store
from lendsafe.adapters.db import tables as t
from lendsafe.adapters.db.engine import make_engine, upgrade
from lendsafe.adapters.db.reminder_tables import ALL_TABLES
from lendsafe.config import ReminderSettings
from lendsafe.domain.lending.product import parse_term
from lendsafe.domain.reminders.messages import Money, format_money
from lendsafe.domain.reminders.policy import default_policy, load_policy
from lendsafe.domain.reminders.quiet_hours import within_caps
from lendsafe.services.catalogue import Catalogue
from lendsafe.services.lending import LendingService
from lendsafe.services.reminder_dispatch import Worker
from lendsafe.services.reminders import ReminderService
from tests.outbox_seed import PLAN_ALL

ZONES = ["America/New_York", "Europe/London", "Australia/Sydney", "America/Santiago",
         "Asia/Kolkata", "Pacific/Chatham", "Australia/Lord_Howe", "Asia/Shanghai"]
#: dates near DST changes in 2026 (New York 8 Mar, London 29 Mar, Sydney/Santiago 5 Apr,
#: Sydney 4 Oct, London 25 Oct, New York 1 Nov)
DST_DATES = [date(2026, 3, 8), date(2026, 3, 29), date(2026, 4, 5), date(2026, 10, 4),
             date(2026, 10, 25), date(2026, 11, 1), date(2026, 9, 6)]
SETTINGS = settings(max_examples=30, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])
ALL = ("sms", "app_push", "voice", "email")


class Recorder:
    """A provider that notes the worker's clock at every accepted send."""

    def __init__(self, clock: list[datetime]) -> None:
        self.clock, self.inner, self.sent = clock, FakeProvider(deliver=True), []

    def send(self, message: OutboundMessage) -> SendResult:
        result = self.inner.send(message)
        self.sent.append((message, self.clock[0]))
        return result

    def was_sent(self, dedup_key: str) -> bool | None:
        return self.inner.was_sent(dedup_key)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, dict[str, Any]]]:
    """One migrated database with template loans (bullet 20 days, weekly 8 weeks)."""
    path: Path = tmp_path_factory.mktemp("props") / "props.sqlite"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    lending = LendingService(engine, Catalogue.load())
    lending.initialise(date(2026, 3, 2))
    templates = {}
    for product, term in (("cn-bullet", "20d"), ("cn-weekly", "8w")):
        loan_id = lending.book(f"tpl-{product}", product, 200_000, parse_term(term))
        with engine.connect() as connection:
            loan = dict(connection.execute(select(t.loans).where(t.loans.c.id == loan_id))
                        .one()._mapping)
            rows = [dict(r._mapping) for r in connection.execute(
                select(t.installments).where(t.installments.c.loan_id == loan_id))]
        templates[product] = (loan, rows)
    yield engine, templates
    engine.dispose()


def _reset(engine: Engine) -> None:
    with engine.begin() as connection:
        for table in reversed(ALL_TABLES):
            connection.execute(delete(table))
        connection.execute(delete(t.installments).where(t.installments.c.loan_id >= 1000))
        connection.execute(delete(t.loans).where(t.loans.c.id >= 1000))
        connection.execute(delete(t.borrowers).where(t.borrowers.c.id >= 1000))


def _insert_loans(engine: Engine, templates: dict[str, Any], products: list[str],
                  first_due: date, zone: str, quiet: str | None) -> list[int]:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    with engine.begin() as connection:
        connection.execute(insert(t.borrowers).values(id=1000, external_ref="P", created_at=at))
        connection.execute(insert(store.reminder_contacts).values(
            borrower_id=1000, time_zone=zone, language="en", quiet_hours=quiet, opt_outs="",
            updated_at=at))
        connection.execute(insert(store.reminder_addresses), [
            {"borrower_id": 1000, "channel": c, "address_sealed": f"{c}-1", "key_id": "plain"}
            for c in ("sms", "app_push", "email")])
        ids = []
        for k, product in enumerate(products):
            loan, rows = templates[product]
            shift = first_due - rows[0]["due_date"] + timedelta(days=k)
            loan_id = 1000 + k
            connection.execute(insert(t.loans).values({**loan, "id": loan_id,
                                                       "borrower_id": 1000}))
            connection.execute(insert(t.installments), [
                {**r, "loan_id": loan_id, "due_date": r["due_date"] + shift} for r in rows])
            ids.append(loan_id)
    return ids


def _drive(worker: Worker, engine: Engine, clock: list[datetime], until: datetime) -> None:
    """Event-driven time: jump to the next due step, run one batch, repeat."""
    for _ in range(2_000):
        with engine.connect() as connection:
            upcoming = dstore.next_due(connection)
        if upcoming is None or upcoming > until:
            return
        clock[0] = max(clock[0] + timedelta(seconds=1), upcoming)
        worker.run_once()
    raise AssertionError("the worker did not settle")


def _tight_policy() -> Any:
    raw = {
        "policy_id": "tight", "jurisdiction": "XX", "default_language": "en",
        "languages": ["en"], "quiet_hours": {"default": ["21:00-08:00"], "legal": ["22:00-07:00"]},
        "caps": {"per_day": 1, "per_week": 3},
        "receipt_timeout_minutes": {"app_push": 15, "sms": 30, "voice": 5, "email": 240},
        "steps": [
            {"code": "T-1", "offset_days": -1, "send_at": "20:30", "kind": "reminder",
             "channels": ["app_push", "sms"], "template": "reminder_before_due",
             "expiry_hours": 60},
            {"code": "T0", "offset_days": 0, "send_at": "08:00", "kind": "reminder",
             "channels": ["sms", "email"], "template": "reminder_due_today", "expiry_hours": 40},
            {"code": "T+1", "offset_days": 1, "send_at": "10:00", "kind": "overdue_notice",
             "legally_required": True, "channels": ["sms", "app_push"],
             "template": "overdue_notice", "expiry_hours": 72},
        ],
    }
    return load_policy(raw)


quiet_windows = st.one_of(st.none(), st.builds(
    lambda s, length: f"{s // 60:02d}:{s % 60:02d}-{(s + length) % 1440 // 60:02d}:"
                      f"{(s + length) % 1440 % 60:02d}",
    st.integers(0, 1439).map(lambda m: m - m % 15), st.integers(1, 64).map(lambda q: q * 15)))


@SETTINGS
@given(zone=st.sampled_from(ZONES), anchor=st.sampled_from(DST_DATES),
       shift=st.integers(-3, 3), quiet=quiet_windows,
       products=st.lists(st.sampled_from(["cn-bullet", "cn-weekly"]), min_size=1, max_size=3),
       tight=st.booleans())
@example(zone="America/New_York", anchor=date(2026, 3, 8), shift=0, quiet="20:00-08:15",
         products=["cn-bullet"], tight=True)  # T-1 and T0 both land on 08:15: one must wait
def test_quiet_hours_and_caps_hold_at_send_time(
        world: tuple[Engine, dict[str, Any]], zone: str, anchor: date, shift: int,
        quiet: str | None, products: list[str], tight: bool) -> None:
    engine, templates = world
    _reset(engine)
    policy = _tight_policy() if tight else default_policy()
    ids = _insert_loans(engine, templates, products, anchor + timedelta(days=shift), zone, quiet)
    start = datetime.combine(anchor - timedelta(days=10), time(0), tzinfo=UTC)
    with engine.begin() as connection:
        ReminderService(engine, PLAN_ALL, policy=policy, clock=lambda: start).replan_loans(
            connection, ids)
    clock = [start]
    recorder = Recorder(clock)
    worker = Worker(engine, {c: recorder for c in ALL}, ReminderSettings(),
                    policies={policy.policy_id: policy}, clock=lambda: clock[0])
    _drive(worker, engine, clock, start + timedelta(days=80))
    tz = ZoneInfo(zone)
    own = store.parse_quiet_hours(quiet)  # a preference that leaves no open minute with
    if own is not None and not own.leaves_time_with(policy.legal_quiet_hours):  # the legal
        own = None  # bound is set aside for the policy default (never a silent borrower)
    bounds = (own or policy.default_quiet_hours).union(policy.legal_quiet_hours)
    sends: dict[str, list[datetime]] = {}
    for message, at in recorder.sent:
        assert not bounds.is_quiet(at, tz), f"{message.dedup_key} sent in quiet hours at {at}"
        earlier = sends.setdefault(message.loan_id, [])
        assert within_caps(earlier, at, tz, policy.caps), f"cap broken by {message.dedup_key}"
        earlier.append(at)
    assert recorder.sent or not ids  # something was sent in every scenario


@SETTINGS
@given(days_before=st.integers(0, 5), hour=st.integers(0, 23),
       fraction=st.sampled_from([1, 2, 4, 10, 11]), zone=st.sampled_from(ZONES))
def test_a_payment_before_a_step_cancels_it(
        world: tuple[Engine, dict[str, Any]], days_before: int, hour: int, fraction: int,
        zone: str) -> None:
    engine, templates = world
    _reset(engine)
    due = date(2026, 6, 15)
    [loan_id] = _insert_loans(engine, templates, ["cn-bullet"], due, zone, None)
    start = datetime(2026, 6, 1, tzinfo=UTC)
    service = ReminderService(engine, PLAN_ALL, clock=lambda: start)
    with engine.begin() as connection:
        service.replan_loans(connection, [loan_id])
    paid_at = datetime.combine(due - timedelta(days=days_before), time(hour), tzinfo=UTC)
    clock = [start]
    recorder = Recorder(clock)
    worker = Worker(engine, {c: recorder for c in ALL}, clock=lambda: clock[0])
    _drive(worker, engine, clock, paid_at)
    owed = _pay(engine, service, loan_id, fraction, paid_at)
    before = len(recorder.sent)
    _drive(worker, engine, clock, paid_at + timedelta(days=20))
    after = recorder.sent[before:]
    if owed == 0:
        assert after == [], [m.dedup_key for m, _ in after]
    else:
        shown = format_money(Money(owed, "CNY"), "en")
        assert all(shown in m.body for m, _ in after), (shown, [m.body for m, _ in after])


def _pay(engine: Engine, service: ReminderService, loan_id: int, fraction: int,
         at: datetime) -> int:
    """Pay ``fraction``/10 of the instalment (10 and more settles it); returns what is owed."""
    i = t.installments.c
    with engine.begin() as connection:
        row = connection.execute(select(i.principal_due_minor, i.interest_due_minor).where(
            i.loan_id == loan_id)).one()
        total = row.principal_due_minor + row.interest_due_minor
        paid = min(total, total * fraction // 10)
        principal = min(paid, row.principal_due_minor)
        connection.execute(t.installments.update().where(i.loan_id == loan_id).values(
            principal_paid_minor=principal, interest_paid_minor=paid - principal))
        service.clock = lambda: at
        service.replan_loans(connection, [loan_id])  # what the loan.pay listener does
    return int(total - paid)
