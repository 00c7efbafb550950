"""Reminder outbox: planning in the lending transaction, dispatch rules, receipts, bad input."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update
from typer.testing import CliRunner

from lendsafe.adapters.channels import FailureMode, FakeProvider
from lendsafe.adapters.db import reminder_dispatch_store as dstore
from lendsafe.adapters.db import reminder_store as store
from lendsafe.adapters.db.reminder_tables import reminder_attempts, reminders
from lendsafe.config import ReminderSettings
from lendsafe.domain.lending.product import parse_term
from lendsafe.domain.money import currency, parse_amount
from lendsafe.domain.reminders.policy import dedup_key
from lendsafe.domain.reminders.templates import TemplateError, load_catalog
from lendsafe.services.lending import LendingService
from lendsafe.services.reminder_dispatch import Worker
from lendsafe.services.reminders import Contact, ReminderInputError, ReminderService

PLANNED = datetime(2026, 3, 1, 16, 0, tzinfo=UTC)
T0_AT = datetime(2026, 3, 22, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai, the T0 step of a 20d loan
ALL = ("sms", "app_push", "voice", "email")
FAST = ReminderSettings(backoff_base_seconds=1, backoff_cap_seconds=4, lease_seconds=30,
                        horizon_days=3660)  # dispatch tests: every step planned at booking


@pytest.fixture
def reminders_service(service: LendingService) -> ReminderService:
    """A reminder service listening to the lending service, planning as of 1 March 16:00Z."""
    rs = ReminderService(service.engine, FAST, clock=lambda: PLANNED)
    service.subscribe(rs.on_change)
    return rs


def _book(service: LendingService, rs: ReminderService, ref: str = "B1", term: str = "20d",
          addresses: dict[str, str] | None = None, product: str = "cn-bullet",
          amount: int = 100_000) -> int:
    loan_id = service.book(ref, product, amount, parse_term(term))
    rs.set_contact(ref, Contact("Asia/Shanghai", "en", addresses if addresses is not None
                                else {"sms": "+8613800000001", "app_push": "tok-1"}))
    return loan_id


def _rows(engine: Engine, loan_id: int) -> dict[str, Any]:
    with engine.connect() as connection:
        found = connection.execute(select(reminders).where(reminders.c.loan_id == loan_id))
        return {row.step_code: row for row in found}


def _worker(engine: Engine, adapter: Any, at: datetime | Callable[[], datetime],
            channels: tuple[str, ...] = ALL, **kwargs: Any) -> Worker:
    clock = at if callable(at) else (lambda: at)
    return Worker(engine, {c: adapter for c in channels}, FAST, clock=clock, **kwargs)


def _no_sleep(_seconds: float) -> None:
    """Frozen clocks need no waiting."""


def _drain(worker: Worker) -> None:
    worker.run(until_idle=True, sleep=_no_sleep)


# --------------------------------------------------------------------------- planning


def test_booking_plans_every_step_in_its_transaction(service: LendingService,
                                                     reminders_service: ReminderService) -> None:
    loan_id = _book(service, reminders_service)
    rows = _rows(service.engine, loan_id)
    assert set(rows) == {"T-3", "T-1", "T0", "T+1", "T+3"}
    assert {r.status for r in rows.values()} == {"pending"}
    assert rows["T0"].step_key == f"rem:{loan_id}:1:T0"
    assert store.aware(rows["T0"].planned_at) == T0_AT

    def broken(change: Any) -> None:
        raise RuntimeError("a later listener fails")

    service.subscribe(broken)
    with pytest.raises(RuntimeError):
        service.book("B2", "cn-bullet", 100_000, parse_term("20d"))
    with service.engine.connect() as connection:
        count = connection.execute(select(func.count()).select_from(reminders)).scalar()
    assert count == len(rows)  # the failed booking left no reminders behind


def test_sql_step_keys_equal_the_domain_dedup_keys(service: LendingService,
                                                   reminders_service: ReminderService) -> None:
    loan_id = _book(service, reminders_service)
    for step, row in _rows(service.engine, loan_id).items():
        assert f"{row.step_key}:sms" == dedup_key(str(loan_id), 1, step, "sms")


def test_full_payment_cancels_and_prepayment_replaces(
        service: LendingService, reminders_service: ReminderService) -> None:
    bullet = _book(service, reminders_service)
    total = parse_amount(service.payoff(bullet)["total"], currency("CNY"))
    service.pay(bullet, total, "pay-bullet-0001")
    assert {(r.status, r.reason) for r in _rows(service.engine, bullet).values()} == {
        ("cancelled", "instalment settled")}

    annuity = _book(service, reminders_service, "B3", "6m", product="cn-annuity",
                    amount=600_000)
    before = _count_by_status(service.engine, annuity)
    service.pay(annuity, 400_000, "pay-annuity-0001")  # reduce-term prepayment
    with service.engine.connect() as connection:
        seqs = {r.seq: r for r in connection.execute(
            select(reminders.c.installment_seq.label("seq"), reminders.c.status,
                   reminders.c.reason, reminders.c.amount_due_minor)
            .where(reminders.c.loan_id == annuity))}
    after = _count_by_status(service.engine, annuity)
    assert after.get("cancelled", 0) > 0 and after["pending"] < before["pending"]
    assert {r.reason for r in seqs.values() if r.status == "cancelled"} <= {
        "instalment settled", "schedule changed"}


def _count_by_status(engine: Engine, loan_id: int) -> dict[str, int]:
    with engine.connect() as connection:
        return dict(connection.execute(
            select(reminders.c.status, func.count()).where(reminders.c.loan_id == loan_id)
            .group_by(reminders.c.status)).all())


def test_close_of_business_plans_the_next_day_once(service: LendingService,
                                                   reminders_service: ReminderService) -> None:
    loan_id = _book(service, reminders_service, term="7d")  # due 9 March
    with service.engine.begin() as connection:
        connection.execute(reminders.delete())
    service.close_business(date(2026, 3, 5))  # plans 6 March: T-3 of the 9 March due date
    assert set(_rows(service.engine, loan_id)) == {"T-3"}
    assert reminders_service.plan(date(2026, 3, 6)) == 0  # planning twice creates nothing
    assert reminders_service.plan(date(2026, 3, 8)) == 1  # T-1 on demand
    assert reminders_service.plan(date(2026, 3, 8)) == 0


# --------------------------------------------------------------------------- dispatch


def _t0(engine: Engine, loan_id: int) -> Any:
    return _rows(engine, loan_id)["T0"]


def test_failed_channel_fails_over_once(service: LendingService,
                                        reminders_service: ReminderService) -> None:
    loan_id = _book(service, reminders_service)
    fake = FakeProvider(deliver=True)
    fake.fail_for(dedup_key(str(loan_id), 1, "T0", "app_push"), FailureMode.ERROR)
    _drain(_worker(service.engine, fake, T0_AT))
    row = _t0(service.engine, loan_id)
    assert (row.status, row.sent_channel, row.failovers) == ("delivered", "sms", 1)
    assert fake.count(f"{row.step_key}:sms") == 1
    assert fake.count(f"{row.step_key}:app_push") == 0


def test_timeout_after_accept_is_confirmed_not_resent(
        service: LendingService, reminders_service: ReminderService) -> None:
    loan_id = _book(service, reminders_service)
    fake = FakeProvider()
    key = dedup_key(str(loan_id), 1, "T0", "app_push")
    fake.fail_for(key, FailureMode.TIMEOUT_AFTER_ACCEPT)
    _drain(_worker(service.engine, fake, T0_AT))
    row = _t0(service.engine, loan_id)
    assert row.status == "sent" and "record shows it was sent" in row.reason
    assert [m.dedup_key for m in fake.accepted if m.step == "T0"] == [key]


def test_timeout_before_accept_retries_same_channel_with_backoff(
        service: LendingService, reminders_service: ReminderService) -> None:
    loan_id = _book(service, reminders_service)
    fake = FakeProvider(deliver=True)
    key = dedup_key(str(loan_id), 1, "T0", "app_push")
    fake.fail_for(key, FailureMode.TIMEOUT_BEFORE_ACCEPT)
    _drain(_worker(service.engine, fake, T0_AT))
    row = _t0(service.engine, loan_id)
    assert row.status == "pending" and store.aware(row.due_at) > T0_AT
    assert store.aware(row.due_at) <= T0_AT + timedelta(seconds=1.5)  # base 1 s, jitter 50 %
    _drain(_worker(service.engine, fake, T0_AT + timedelta(seconds=2)))
    row = _t0(service.engine, loan_id)
    assert (row.status, row.sent_channel, row.failovers) == ("delivered", "app_push", 0)
    assert fake.count(key) == 1


@pytest.mark.parametrize(("escalation", "status", "sms_sends"),
                         [("failover", "delivered", 1), ("hold", "sent", 0)])
def test_unknown_outcome_waits_for_a_receipt_then_escalates(
        service: LendingService, reminders_service: ReminderService, escalation: str,
        status: str, sms_sends: int) -> None:
    loan_id = _book(service, reminders_service)
    fake = FakeProvider(can_tell=False, deliver=True)
    key = dedup_key(str(loan_id), 1, "T0", "app_push")
    fake.fail_for(key, FailureMode.TIMEOUT_AFTER_ACCEPT)
    settings = ReminderSettings(escalation=escalation, horizon_days=3660)
    worker = Worker(service.engine, {c: fake for c in ALL}, settings, clock=lambda: T0_AT)
    worker.run(until_idle=True, sleep=_no_sleep)
    assert _t0(service.engine, loan_id).status == "awaiting_receipt"
    later = T0_AT + timedelta(minutes=16)  # app_push receipt timeout is 15 minutes
    Worker(service.engine, {c: fake for c in ALL}, settings, clock=lambda: later).run(
        until_idle=True, sleep=_no_sleep)
    assert _t0(service.engine, loan_id).status == status
    assert fake.count(dedup_key(str(loan_id), 1, "T0", "sms")) == sms_sends


def test_receipt_webhook_confirms_delivery(service: LendingService,
                                           reminders_service: ReminderService) -> None:
    loan_id = _book(service, reminders_service)
    fake = FakeProvider()  # accepted, no receipt yet
    _drain(_worker(service.engine, fake, T0_AT))
    assert _t0(service.engine, loan_id).status == "awaiting_receipt"
    key = dedup_key(str(loan_id), 1, "T0", "app_push")
    assert reminders_service.record_receipt("fake", dedup_key=key, provider_message_id=None,
                                            delivered=True)
    assert _t0(service.engine, loan_id).status == "delivered"
    assert not reminders_service.record_receipt("fake", dedup_key="rem:nope:1:T0:sms",
                                                provider_message_id=None, delivered=True)


def test_stuck_lease_is_recovered_without_a_double(service: LendingService,
                                                   reminders_service: ReminderService) -> None:
    loan_id = _book(service, reminders_service)
    fake = FakeProvider(deliver=True)
    crashed = _worker(service.engine, fake, T0_AT)
    with service.engine.begin() as connection:  # claim, send, then "die" before recording
        rows, context = dstore.claim_batch(connection, "dead:1", T0_AT,
                                           timedelta(seconds=30), 10)
    from lendsafe.services.reminder_dispatch import _Batch

    batch = _Batch(T0_AT)
    crashed._handle(next(r for r in rows if r["step_code"] == "T0"), context, batch)
    crashed._flush(batch, T0_AT + timedelta(minutes=1))  # sent; never recorded
    key = dedup_key(str(loan_id), 1, "T0", "app_push")
    assert fake.count(key) == 1 and _t0(service.engine, loan_id).inflight
    _drain(_worker(service.engine, fake, T0_AT + timedelta(seconds=10)))
    assert _t0(service.engine, loan_id).status == "pending"  # still leased: untouched
    _drain(_worker(service.engine, fake, T0_AT + timedelta(seconds=31)))
    row = _t0(service.engine, loan_id)
    assert row.status == "sent" and "recovered" in row.reason
    assert fake.count(key) == 1 and len(fake.accepted) == 1 + _others(fake)
    with service.engine.connect() as connection:
        recovery = connection.execute(select(reminder_attempts.c.outcome).where(
            reminder_attempts.c.recovery == True)).scalars().all()  # noqa: E712
    assert recovery == ["confirmed"]


def _others(fake: FakeProvider) -> int:
    return sum(1 for m in fake.accepted if m.step != "T0")


def test_all_channels_failing_until_expiry_is_missed_with_reason(
        service: LendingService, reminders_service: ReminderService) -> None:
    loan_id = _book(service, reminders_service)
    fake = FakeProvider(rule=lambda message, attempt: FailureMode.ERROR)
    now = [T0_AT]
    worker = _worker(service.engine, fake, lambda: now[0])
    while _t0(service.engine, loan_id).status == "pending" and now[0] < T0_AT + timedelta(
            hours=9):
        worker.run(until_idle=True, sleep=_no_sleep)
        now[0] += timedelta(minutes=5)
    row = _t0(service.engine, loan_id)
    assert row.status == "missed" and "injected provider error" in row.reason
    report = reminders_service.report(date(2026, 3, 22), now[0])
    assert report["missed"] >= 1 and report["by_step"]["T0"]["missed"] == 1


def test_expired_without_a_worker_is_reported_missed(
        service: LendingService, reminders_service: ReminderService) -> None:
    loan_id = _book(service, reminders_service)
    _drain(_worker(service.engine, FakeProvider(), T0_AT + timedelta(hours=9)))
    row = _t0(service.engine, loan_id)
    assert (row.status, row.reason) == ("missed", "not dispatched before expiry")


# --------------------------------------------------------------------------- bad input


def test_unknown_channel_and_zone_are_refused_clearly(
        service: LendingService, reminders_service: ReminderService) -> None:
    service.book("B9", "cn-bullet", 100_000, parse_term("20d"))
    with pytest.raises(ReminderInputError, match=r"unknown channel 'fax'.*unknown time zone"):
        reminders_service.set_contact("B9", Contact("Mars/Olympus", "zh", {"fax": "1"}))
    with pytest.raises(LookupError, match="no borrower 'nobody'"):
        reminders_service.set_contact("nobody", Contact("Asia/Shanghai", "zh"))
    with pytest.raises(ReminderInputError, match="leave no minute of the day"):
        reminders_service.set_contact("B9", Contact("Asia/Shanghai", "zh", {"sms": "+861"},
                                                    quiet_hours="07:00-23:00"))


def test_unreachable_borrower_is_reported_not_lost(
        service: LendingService, reminders_service: ReminderService) -> None:
    loan_id = _book(service, reminders_service, addresses={})
    rows = _rows(service.engine, loan_id)
    assert rows["T+1"].status == "unreachable"  # legally required: an alarm, not a skip
    assert rows["T0"].status == "skipped"
    report = reminders_service.report(date(2026, 3, 23), T0_AT)
    assert report["unreachable"] == 1
    reminders_service.set_contact("B1", Contact("Asia/Shanghai", "zh", {"sms": "+86138"}))
    assert {r.status for r in _rows(service.engine, loan_id).values()} == {"pending"}


def test_missing_adapter_is_skipped_and_named(service: LendingService,
                                              reminders_service: ReminderService) -> None:
    loan_id = _book(service, reminders_service, addresses={"voice": "+86138"})
    fake = FakeProvider(deliver=True)
    _worker(service.engine, fake, T0_AT, channels=("sms", "app_push", "email")).run(
        until_idle=True, sleep=_no_sleep)
    row = _t0(service.engine, loan_id)
    assert row.status == "skipped" and "voice: no adapter configured" in row.reason


def test_malformed_template_blocks_with_a_clear_error(
        service: LendingService, reminders_service: ReminderService) -> None:
    with pytest.raises(TemplateError, match=r"malformed|format spec"):
        load_catalog({"reminder_due_today": {"en": {"body": "pay {amount:>10}"}}})
    catalog = load_catalog({name: {"zh": {"body": "{surprise}"}, "en": {"body": "{surprise}"}}
                            for name in ("reminder_due_today", "reminder_before_due",
                                         "overdue_notice")})
    loan_id = _book(service, reminders_service)
    _drain(_worker(service.engine, FakeProvider(), T0_AT, catalog=catalog))
    row = _t0(service.engine, loan_id)
    assert row.status == "blocked" and "field 'surprise'" in row.reason
    assert reminders_service.report(date(2026, 3, 22), T0_AT)["blocked"] == 1
    _drain(_worker(service.engine, FakeProvider(), T0_AT + timedelta(hours=9)))
    row = _t0(service.engine, loan_id)
    assert row.status == "missed" and "expired; last: cannot build" in row.reason


def test_caps_defer_at_send_time(service: LendingService,
                                 reminders_service: ReminderService) -> None:
    loan_id = _book(service, reminders_service)
    with service.engine.begin() as connection:  # three contacts already today
        connection.execute(update(reminders).where(
            reminders.c.loan_id == loan_id, reminders.c.step_code != "T0").values(
            sent_at=T0_AT - timedelta(minutes=30), status="sent"))
    _drain(_worker(service.engine, FakeProvider(), T0_AT))
    row = _t0(service.engine, loan_id)
    assert row.status == "missed" and row.reason.startswith("cap_exceeded")


# --------------------------------------------------------------------------- CLI and API


def test_report_check_alerts_when_overdue(service: LendingService,
                                          reminders_service: ReminderService,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from lendsafe.entrypoints.cli_remind import remind_app

    _book(service, reminders_service)
    monkeypatch.setenv("LENDSAFE_DATABASE_URL",
                       service.engine.url.render_as_string(hide_password=False))
    runner = CliRunner()
    late = (T0_AT + timedelta(minutes=10)).isoformat()
    result = runner.invoke(remind_app, ["report", "--date", "2026-03-22", "--json", "--check",
                                        "--now", late])
    assert result.exit_code == 1, result.output
    document = json.loads(result.stdout)
    assert document["overdue_for_dispatch"] == 1 and document["alert"] is True
    assert {"due", "sent", "delivered", "failed_over", "missed", "duplicates", "by_channel",
            "by_step"} <= set(document)
    early = runner.invoke(remind_app, ["report", "--date", "2026-03-22", "--check", "--now",
                                       T0_AT.isoformat()])
    assert early.exit_code == 0, early.output
    bad = runner.invoke(remind_app, ["contact", "B1", "--tz", "Asia/Shanghai", "--address",
                                     "fax=123"])
    assert bad.exit_code == 2 and "unknown channel 'fax'" in bad.output


def test_receipt_webhook_needs_a_valid_signature(service: LendingService,
                                                 reminders_service: ReminderService) -> None:
    from fastapi.testclient import TestClient

    from lendsafe.bootstrap import Container
    from lendsafe.entrypoints.api.app import create_app
    from lendsafe.services.access import create_api_key

    loan_id = _book(service, reminders_service)
    _drain(_worker(service.engine, FakeProvider(), T0_AT))
    reminders_service.settings = ReminderSettings(receipt_secrets=(("acme", "s3cret"),),
                                                 horizon_days=3660)
    container = Container(None, service.engine, service.catalogue, service)  # type: ignore[arg-type]
    container.reminders = reminders_service
    client = TestClient(create_app(container))
    body = json.dumps({"dedup_key": dedup_key(str(loan_id), 1, "T0", "app_push"),
                       "status": "delivered"}).encode()
    good = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert client.post("/reminders/receipts/acme", content=body,
                       headers={"X-Lendsafe-Signature": "sha256=00"}).status_code == 401
    assert client.post("/reminders/receipts/other", content=body,
                       headers={"X-Lendsafe-Signature": good}).status_code == 401
    answer = client.post("/reminders/receipts/acme", content=body,
                         headers={"X-Lendsafe-Signature": good})
    assert answer.status_code == 200 and answer.json() == {"matched": True}
    assert _t0(service.engine, loan_id).status == "delivered"
    unauthenticated = client.get("/reminders/report?date=2026-03-22")
    assert unauthenticated.status_code == 401, unauthenticated.text
    staff = create_api_key(service.engine, "operations")
    borrower = create_api_key(service.engine, "borrower", "B1")
    assert client.get("/reminders/report?date=2026-03-22", headers={
        "Authorization": f"Bearer {borrower}"}).status_code == 403
    report = client.get("/reminders/report?date=2026-03-22&now=2026-03-22T02:00:00Z",
                        headers={"Authorization": f"Bearer {staff}"})
    assert report.status_code == 200 and report.json()["delivered"] == 1
