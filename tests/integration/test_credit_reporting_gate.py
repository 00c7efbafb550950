"""The credit-reporting seam: relief and forbearance flags, and the gate before a negative
report (overdue, the legally required notice sent - checked from what the reminder
workers really sent - and no suppression in force), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from lendsafe.adapters.channels.file_channel import FileChannel
from lendsafe.domain.lending.product import Term, TermUnit
from lendsafe.domain.lending.relief import ReliefEvent, ReliefOffer
from lendsafe.services.credit_reporting import flags, reporting_gate
from lendsafe.services.lending import LendingService
from lendsafe.services.relief import ReliefService
from lendsafe.services.reminder_dispatch import Worker
from lendsafe.services.reminders import Contact, ReminderService

CLOCK = datetime(2026, 3, 1, 16, 0, tzinfo=UTC)
T_PLUS_1 = datetime(2026, 3, 17, 2, 30, tzinfo=UTC)  # 10:30 in Shanghai, the day after due


def _book(service: LendingService, ref: str, region: str) -> int:
    loan_id = service.book(ref, "cn-bullet", 200_000, Term(14, TermUnit.DAYS), region=region)
    return loan_id


def _codes(gate: dict[str, object]) -> list[str]:
    return [r["code"] for r in gate["reasons"]]  # type: ignore[attr-defined]


def test_the_gate_needs_an_overdue_loan_and_a_sent_notice(service: LendingService,
                                                          tmp_path: Path) -> None:
    rs = ReminderService(service.engine, clock=lambda: CLOCK)
    service.subscribe(rs.on_change)
    loan_id = _book(service, "g1", "FJ")
    rs.set_contact("g1", Contact("Asia/Shanghai", "zh", {"sms": "+8613800000001"}))
    with service.engine.connect() as connection:
        gate = reporting_gate(connection, loan_id, date(2026, 3, 10))
    assert not gate["negative_allowed"] and _codes(gate) == ["credit.not_overdue"]
    assert {r["text_zh"] for r in gate["reasons"]} == {"借款未逾期，无负面信息可报送"}

    service.close_business(date(2026, 3, 17))  # due 16 March, unpaid
    with service.engine.connect() as connection:
        gate = reporting_gate(connection, loan_id, date(2026, 3, 18))
    assert gate["days_past_due"] >= 1
    assert _codes(gate) == ["credit.notice_not_sent"] and "2026-03-16" in (
        gate["reasons"][0]["text_en"])

    channel = FileChannel(tmp_path / "sent.jsonl")
    Worker(service.engine, dict.fromkeys(("sms", "app_push", "voice", "email"), channel),
           clock=lambda: T_PLUS_1).run(until_idle=True, sleep=lambda _s: None)
    assert [m["step"] for m in channel.records()] == ["T+1"]  # the provider's own record
    with service.engine.connect() as connection:
        gate = reporting_gate(connection, loan_id, date(2026, 3, 18))
        before = reporting_gate(connection, loan_id, T_PLUS_1.date() - timedelta(days=1))
    assert gate["negative_allowed"] and gate["reasons"] == []
    # asked about a day before the notice went out, the gate is closed: no back-dating
    assert "credit.notice_not_sent" in _codes(before) and not before["negative_allowed"]
    assert gate["overdue_notice"]["step"] == "T+1" and gate["overdue_notice"]["channel"] == "sms"


def test_relief_flags_suppress_negative_reporting_for_their_window(
        service: LendingService) -> None:
    covered, outside = _book(service, "r1", "GD"), _book(service, "r2", "FJ")
    relief = ReliefService(service)
    event = ReliefEvent("flood", date(2026, 3, 5), date(2026, 4, 30), frozenset({"GD"}),
                        offer=ReliefOffer(deferral_days=0, waive_penalty=True))
    event_id = relief.declare(event)["event_id"]
    service.close_business(date(2026, 3, 4))
    relief.apply(event_id)
    with service.engine.connect() as connection:
        listed = flags(connection)
        in_force = flags(connection, on=date(2026, 4, 1))
        after = flags(connection, on=date(2026, 5, 1))
        gate = reporting_gate(connection, covered, date(2026, 4, 1))
        other = reporting_gate(connection, outside, date(2026, 4, 1))
    assert [(f["loan_id"], f["flag"], f["source"], f["suppress_negative"]) for f in listed] == [
        (covered, "relief", f"relief:{event_id}", True)]
    assert in_force == listed and after == []
    assert "credit.suppressed" in _codes(gate) and not gate["negative_allowed"]
    assert gate["flags"] == listed
    assert "credit.suppressed" not in _codes(other) and other["flags"] == []


def test_credit_commands_print_json(tmp_path: Path) -> None:
    from lendsafe.entrypoints.cli import app

    env = {"LENDSAFE_DATA_DIR": str(tmp_path)}
    runner = CliRunner()
    assert runner.invoke(app, ["init", "--date", "2026-03-02"], env=env).exit_code == 0
    booked = runner.invoke(app, ["book", "--borrower", "c1", "--product", "cn-bullet",
                                 "--amount", "2000.00", "--term", "14d", "--json"], env=env)
    assert booked.exit_code == 0, booked.output
    loan_id = json.loads(booked.stdout)["loan_id"]
    listed = runner.invoke(app, ["credit", "flags", "--json"], env=env)
    assert listed.exit_code == 0 and json.loads(listed.stdout) == {"flags": []}
    gate = runner.invoke(app, ["credit", "gate", str(loan_id), "--json"], env=env)
    assert gate.exit_code == 0, gate.output
    document = json.loads(gate.stdout)
    assert document["negative_allowed"] is False and document["on"] == "2026-03-02"
    missing = runner.invoke(app, ["credit", "gate", "999", "--json"], env=env)
    assert missing.exit_code == 2 and "loan 999 does not exist" in missing.output
