"""The CN credit-report gate: the fact "overdue notice sent at T" is queryable per instalment.

In CN an overdue notice must precede any negative credit report (default policy: the T+1
step, legally required). :func:`reminder_dispatch_store.overdue_notice_sent` answers from
the outbox whether (and when, on which channel) such a notice went out; a reminder before
the due date, a failed notice or a notice for another due date does not count.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from lendsafe.adapters.channels import FailureMode, FakeProvider
from lendsafe.adapters.db import reminder_dispatch_store as dstore
from lendsafe.config import ReminderSettings
from lendsafe.domain.lending.product import parse_term
from lendsafe.domain.reminders.policy import dedup_key
from lendsafe.services.lending import LendingService
from lendsafe.services.reminder_dispatch import Worker
from lendsafe.services.reminders import Contact, ReminderService

PLANNED = datetime(2026, 3, 1, 16, 0, tzinfo=UTC)
T0_AT = datetime(2026, 3, 22, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai on the due date
T1_AT = datetime(2026, 3, 23, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai the day after
ALL = ("sms", "app_push", "voice", "email")
FAST = ReminderSettings(backoff_base_seconds=1, backoff_cap_seconds=4, lease_seconds=30,
                        horizon_days=3660)  # every step planned at booking


def _no_sleep(_seconds: float) -> None:
    """Frozen clocks need no waiting."""


def _booked(service: LendingService) -> int:
    planner = ReminderService(service.engine, FAST, clock=lambda: PLANNED)
    service.subscribe(planner.on_change)
    loan_id = service.book("B1", "cn-bullet", 100_000, parse_term("20d"))  # due 22 March
    planner.set_contact("B1", Contact("Asia/Shanghai", "zh",
                                      {"sms": "+8613800000001", "app_push": "tok-1"}))
    return loan_id


def _dispatch(service: LendingService, provider: FakeProvider, at: datetime) -> None:
    Worker(service.engine, {c: provider for c in ALL}, FAST, clock=lambda: at).run(
        until_idle=True, sleep=_no_sleep)


def test_the_overdue_notice_is_recorded_for_the_credit_report_gate(
        service: LendingService) -> None:
    loan_id = _booked(service)
    provider = FakeProvider(deliver=True)
    _dispatch(service, provider, T0_AT)  # the due-date reminder is not an overdue notice
    with service.engine.connect() as connection:
        assert dstore.overdue_notice_sent(connection, loan_id, 1) is None
    _dispatch(service, provider, T1_AT)
    with service.engine.connect() as connection:
        notice = dstore.overdue_notice_sent(connection, loan_id, 1)
        assert dstore.overdue_notice_sent(connection, loan_id, 1, date(2026, 3, 29)) is None
        assert dstore.overdue_notice_sent(connection, loan_id + 1, 1) is None
    assert notice is not None
    assert (notice.step_code, notice.channel, notice.status) == ("T+1", "sms", "delivered")
    assert notice.sent_at == T1_AT and notice.delivered_at == T1_AT
    assert provider.count(dedup_key(str(loan_id), 1, "T+1", "sms")) == 1  # the provider agrees


def test_a_notice_that_could_not_be_sent_does_not_open_the_gate(
        service: LendingService) -> None:
    loan_id = _booked(service)
    provider = FakeProvider(rule=lambda message, attempt: FailureMode.ERROR)
    now = T1_AT
    while now < T1_AT + timedelta(hours=2):  # every channel keeps failing
        _dispatch(service, provider, now)
        now += timedelta(minutes=10)
    with service.engine.connect() as connection:
        assert dstore.overdue_notice_sent(connection, loan_id, 1) is None
