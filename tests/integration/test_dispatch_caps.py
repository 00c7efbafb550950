"""Frequency caps hold across concurrent workers, checked from the provider's own record.

Every loan has all five steps of its instalment due at the same instant (a backlog, as after
an outage), and several workers with small batches drain them at once, so a loan's steps
land in different workers' batches while its other steps are in flight. The caps are
tightened (2 per local day, 3 per rolling week); what went out is read back from the file
channel's JSON lines, not from the outbox tables:

* no loan gets more than 2 messages on a local day or more than 3 in 7x24 hours;
* nothing is lost: every reachable loan gets exactly its allowance, and every step held
  back is reported ``missed`` with the reason ``cap_exceeded``.

Before the claim respected loans (one loan's steps leased to one claimant at a time), these
workers sent up to five messages to a loan within the same second.
"""

from __future__ import annotations

import dataclasses
import json
import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select, update

from lendsafe.adapters.channels import FileChannel, OutboundMessage, SendResult
from lendsafe.adapters.db.engine import make_engine, upgrade
from lendsafe.adapters.db.reminder_tables import reminders
from lendsafe.config import ReminderSettings
from lendsafe.domain.reminders.policy import default_policy
from lendsafe.domain.reminders.quiet_hours import Caps
from lendsafe.services.catalogue import Catalogue
from lendsafe.services.lending import LendingService
from lendsafe.services.reminder_dispatch import Worker
from lendsafe.services.reminders import ReminderService
from tests.outbox_seed import PLAN_ALL, seed_loans

PLANNED_AT = datetime(2026, 3, 1, 16, 0, tzinfo=UTC)
DAY_ONE = datetime(2026, 3, 25, 2, 1, tzinfo=UTC)  # 10:01 in Shanghai
DAY_TWO = DAY_ONE + timedelta(days=1)
CAPS = Caps(per_day=2, per_week=3)
SHANGHAI = ZoneInfo("Asia/Shanghai")
LOANS = 40
WORKERS = 4
ALL = ("sms", "app_push", "voice", "email")


def _world(url: str) -> tuple[Engine, list[int]]:
    engine = make_engine(url)
    upgrade(engine)
    lending = LendingService(engine, Catalogue.load())
    lending.initialise(date(2026, 3, 2))
    ids = seed_loans(engine, lending, "cn-bullet", ["20d"], LOANS)  # due 22 March
    with engine.begin() as connection:
        ReminderService(engine, PLAN_ALL, clock=lambda: PLANNED_AT).replan_loans(connection, ids)
    return engine, ids


def _make_due(engine: Engine, ids: list[int], at: datetime, statuses: tuple[str, ...]) -> int:
    """Every step of these loans in ``statuses`` becomes due at ``at`` (until 16:01 local)."""
    r = reminders.c
    with engine.begin() as connection:
        done = connection.execute(
            update(reminders).where(r.loan_id.in_(ids), r.status.in_(statuses))
            .values(status="pending", reason=None, due_at=at - timedelta(minutes=1),
                    expires_at=at + timedelta(hours=6), channel_index=0, round=0))
    return int(done.rowcount or 0)


class SlowFileChannel(FileChannel):
    """The file channel, a few milliseconds slower per batch: sends overlap between workers."""

    def send_batch(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        time.sleep(0.004)
        return super().send_batch(messages)


def _drain(url: str, outbox: Path, at: datetime) -> list[int]:
    """``WORKERS`` workers in threads, batches of 3, each with its own engine and file handle."""
    policy = dataclasses.replace(default_policy(), caps=CAPS)
    settings = ReminderSettings(batch_size=3, lease_seconds=60)
    sends: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(WORKERS)

    def work(seed: int) -> None:
        engine = make_engine(url)
        channel = SlowFileChannel(outbox, clock=lambda: at)
        worker = Worker(engine, {c: channel for c in ALL}, settings,
                        policies={policy.policy_id: policy}, clock=lambda: at,
                        rng=random.Random(seed))
        if seed < WORKERS:
            start.wait(timeout=60)  # every worker is ready before any claims
        try:
            sends.append(worker.run(until_idle=True, poll_seconds=0.01).sends)
        except BaseException as error:  # reported by the test thread
            errors.append(error)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    work(99)  # a last pass, as an operator would restart: nothing must be left
    return sends


def _provider_sends(outbox: Path) -> dict[str, list[datetime]]:
    """Send instants per loan, from the file channel's own lines."""
    by_loan: dict[str, list[datetime]] = defaultdict(list)
    for line in outbox.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        by_loan[str(record["loan_id"])].append(datetime.fromisoformat(str(record["sent_at"])))
    return by_loan


def _assert_caps_held(by_loan: dict[str, list[datetime]]) -> None:
    for loan, instants in by_loan.items():
        per_day = Counter(instant.astimezone(SHANGHAI).date() for instant in instants)
        assert max(per_day.values()) <= CAPS.per_day, (loan, sorted(instants))
        for end in instants:
            window = [t for t in instants if end - timedelta(days=7) < t <= end]
            assert len(window) <= CAPS.per_week, (loan, sorted(instants))


def _statuses(engine: Engine, ids: list[int]) -> Counter[tuple[str, str]]:
    r = reminders.c
    with engine.connect() as connection:
        rows = connection.execute(select(r.status, r.reason).where(r.loan_id.in_(ids))).all()
    return Counter((status, (reason or "").split(":")[0]) for status, reason in rows)


def test_caps_hold_across_concurrent_workers(database_url: str, tmp_path: Path) -> None:
    engine, ids = _world(database_url)
    outbox = tmp_path / "provider.jsonl"
    assert _make_due(engine, ids, DAY_ONE, ("pending", "missed")) == 5 * LOANS
    first = _drain(database_url, outbox, DAY_ONE)
    assert sum(1 for n in first if n) >= 2, f"the workers did not overlap: {first}"
    day_one = _provider_sends(outbox)
    _assert_caps_held(day_one)
    assert set(day_one) == {str(i) for i in ids}  # every borrower here is reachable
    assert {len(v) for v in day_one.values()} == {CAPS.per_day}  # caps hold, nothing lost
    held_back = _statuses(engine, ids)
    assert held_back[("missed", "cap_exceeded")] == (5 - CAPS.per_day) * LOANS, held_back

    # the next day: the week cap (3) leaves room for one more message per loan
    assert _make_due(engine, ids, DAY_TWO, ("missed",)) == (5 - CAPS.per_day) * LOANS
    _drain(database_url, outbox, DAY_TWO)
    both_days = _provider_sends(outbox)
    _assert_caps_held(both_days)
    assert {len(v) for v in both_days.values()} == {CAPS.per_week}
    lines = [json.loads(line)["dedup_key"] for line in outbox.read_text().splitlines()]
    assert len(lines) == len(set(lines))  # and never a step twice
    engine.dispose()
