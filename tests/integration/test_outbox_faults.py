"""Fault drill: kill -9 workers, failing and timing-out providers, dropped DB connections.

Afterwards every due step must have gone out exactly once, checked from the *provider's own
record* (the file channel's JSON lines), against an expectation computed independently by
the pure planner - not from the outbox tables alone.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, func, select, text

from lendsafe.adapters.db.engine import make_engine, upgrade
from lendsafe.adapters.db.reminder_tables import reminder_attempts, reminders
from lendsafe.domain.reminders.policy import (
    Borrower,
    Installment,
    default_policy,
    plan_reminders_detailed,
)
from lendsafe.services.catalogue import Catalogue
from lendsafe.services.lending import LendingService
from lendsafe.services.reminders import ReminderService
from tests.outbox_seed import PLAN_ALL, default_contact, seed_loans

PLANNED_AT = datetime(2026, 3, 1, 16, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 22, 2, 1, tzinfo=UTC)  # 10:01 in Shanghai on 22 March
TERMS = ["17d", "19d", "20d", "21d", "23d"]  # due 19, 21, 22, 23, 25 March: every step fires
ORIGIN = [time.time()]  # real second at which NOW applies, shared by every worker
FAULTS = "seed=11,error=0.04,timeout_before=0.04,timeout_after=0.04,slow_ms=4"


def _world(url: str, loans: int) -> tuple[Engine, list[int]]:
    engine = make_engine(url)
    upgrade(engine)
    lending = LendingService(engine, Catalogue.load())
    lending.initialise(date(2026, 3, 2))
    ids = seed_loans(engine, lending, "cn-bullet", TERMS, loans)
    service = ReminderService(engine, PLAN_ALL, clock=lambda: PLANNED_AT)
    with engine.begin() as connection:
        service.replan_loans(connection, ids)
    return engine, ids


def _expected(engine: Engine, ids: list[int]) -> set[str]:
    """Steps due at NOW by the pure planner, from the instalments and contacts alone."""
    policy, wanted = default_policy(), set(ids)
    expected: set[str] = set()
    with engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT l.id, b.external_ref, i.seq, i.due_date, i.principal_due_minor "
            "FROM loans l JOIN borrowers b ON b.id = l.borrower_id "
            "JOIN installments i ON i.loan_id = l.id")).all()
    for loan_id, ref, seq, due, amount in rows:
        if loan_id not in wanted:
            continue
        zone, language, addresses, _ = default_contact(int(ref[1:]))
        due_date = due if isinstance(due, date) else date.fromisoformat(due)
        plan = plan_reminders_detailed(
            [Installment(str(loan_id), seq, due_date, amount, "CNY")],
            Borrower(ref, zone, language, addresses), policy, not_before=PLANNED_AT)
        expected |= {r.step_key for r in plan.reminders if r.planned_at <= NOW < r.expires_at}
    return expected


def _spawn(url: str, outbox: Path, seed: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LENDSAFE_DATABASE_URL": url,
           "LENDSAFE_CHANNELS_OVERRIDE": f"file:{outbox}", "LENDSAFE_CHANNEL_FAULTS": FAULTS,
           "LENDSAFE_REMINDER_LEASE_SECONDS": "1.5", "LENDSAFE_REMINDER_BACKOFF_BASE_SECONDS":
           "0.05", "LENDSAFE_REMINDER_BACKOFF_CAP_SECONDS": "0.4",
           "LENDSAFE_REMINDER_IDLE_WAIT_SECONDS": "2", "LENDSAFE_REMINDER_DB_RESTART": "0.05"}
    command = [sys.executable, "-m", "lendsafe.entrypoints.cli_remind", "worker",
               "--until-idle", "--now", NOW.isoformat(), "--batch-size", "40",
               "--seed", str(seed), "--now-origin", str(ORIGIN[0])]
    log = outbox.with_name(f"worker-{seed}.log")
    with log.open("ab") as stderr:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    process.args = [*command, str(log)]  # where to look when it fails
    return process


def _terminator(url: str, stop: threading.Event) -> None:
    """Drop every other connection to the test database now and then (PostgreSQL)."""
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    while not stop.wait(0.8):
        with admin.connect() as connection:
            connection.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
    admin.dispose()


def _drill(url: str, outbox: Path, workers: int, kills: int, seed: int) -> int:
    """Run workers to idle while killing them with SIGKILL at random moments."""
    rng = random.Random(seed)
    live = [_spawn(url, outbox, seed * 100 + i) for i in range(workers)]
    killed, seen = 0, _sent_bytes(outbox)
    while killed < kills:
        # strike while messages are going out: on a loaded machine a worker can spend a
        # second or more starting up, and a kill then interrupts nothing
        seen = _wait_for_sends(outbox, seen)
        time.sleep(rng.uniform(0.0, 0.3))
        victim = rng.randrange(len(live))
        if live[victim].poll() is None:
            live[victim].send_signal(signal.SIGKILL)
            live[victim].wait()
            killed += 1
        live[victim] = _spawn(url, outbox, seed * 100 + 50 + killed)
    for process in live:
        process.wait(timeout=240)
        if process.returncode != 0:
            log = Path(str(process.args[-1]))  # type: ignore[index]
            pytest.fail(f"a worker failed ({process.returncode}):\n{log.read_text()[-3000:]}")
    return killed


def _sent_bytes(outbox: Path) -> int:
    return outbox.stat().st_size if outbox.exists() else 0


def _wait_for_sends(outbox: Path, seen: int, timeout: float = 30.0) -> int:
    """Wait until the provider's file grows past ``seen`` bytes (or ``timeout`` passes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        size = _sent_bytes(outbox)
        if size > seen:
            return size
        time.sleep(0.02)
    return seen


def _provider_counts(outbox: Path) -> Counter[str]:
    steps: Counter[str] = Counter()
    for line in outbox.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line torn by SIGKILL is not a delivery
        steps[record["dedup_key"].rsplit(":", 1)[0]] += 1
    return steps


def run_drill(url: str, tmp_path: Path, loans: int, *, kills: int, workers: int = 3,
              postgres: bool = False) -> None:
    engine, ids = _world(url, loans)
    expected = _expected(engine, ids)
    outbox = tmp_path / "provider.jsonl"
    ORIGIN[0] = time.time()
    stop = threading.Event()
    if postgres:
        threading.Thread(target=_terminator, args=(url, stop), daemon=True).start()
    try:
        _drill(url, outbox, workers, kills, seed=loans)
    finally:
        stop.set()
    _drill(url, outbox, 1, 0, seed=1)  # a last clean pass, as an operator would restart
    sent = _provider_counts(outbox)
    doubles = {k: n for k, n in sent.items() if n > 1}
    assert not doubles, f"{len(doubles)} steps went out more than once: {list(doubles)[:5]}"
    assert set(sent) == expected, (
        f"missing {len(expected - set(sent))}: {sorted(expected - set(sent))[:5]}; "
        f"unexpected {len(set(sent) - expected)}: {sorted(set(sent) - expected)[:5]}")
    with engine.connect() as connection:
        by_status = dict(connection.execute(select(reminders.c.status, func.count())
                                            .where(reminders.c.step_key.in_(expected))
                                            .group_by(reminders.c.status)).all())
        recovered = connection.execute(select(func.count()).select_from(reminder_attempts)
                                       .where(reminder_attempts.c.recovery == True)  # noqa: E712
                                       ).scalar()
    assert set(by_status) <= {"sent", "delivered"}, by_status
    assert recovered, "no kill interrupted a batch: the drill proved nothing"
    assert len(expected) >= loans  # the drill really covered that many due steps
    engine.dispose()


def test_drill_sqlite_1000(tmp_path: Path) -> None:
    run_drill(f"sqlite:///{tmp_path / 'drill.sqlite'}", tmp_path, 840, kills=4)


@pytest.mark.postgres
def test_drill_postgres_1000(tmp_path: Path, postgres_url: str) -> None:
    run_drill(postgres_url, tmp_path, 840, kills=4, postgres=True)


@pytest.mark.slow
def test_drill_sqlite_10000(tmp_path: Path) -> None:
    run_drill(f"sqlite:///{tmp_path / 'drill.sqlite'}", tmp_path, 8400, kills=12, workers=4)


@pytest.mark.slow
@pytest.mark.postgres
def test_drill_postgres_10000(tmp_path: Path, postgres_url: str) -> None:
    run_drill(postgres_url, tmp_path, 8400, kills=12, workers=4, postgres=True)
