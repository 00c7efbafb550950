"""Close of business killed midway and run again ends exactly where one clean run ends.

Two identical books are built; one is closed cleanly, the other is interrupted after a
random chunk (an exception at a chunk boundary, and a real SIGKILL of a child process in
the middle of its work) and then closed again. The two databases must hold the same loans,
instalments and journal (journal ids aside, which PostgreSQL sequences may skip).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from lendsafe.adapters.db import tables as t
from lendsafe.adapters.db.engine import make_engine, upgrade
from lendsafe.domain.lending.product import parse_term
from lendsafe.services.catalogue import Catalogue
from lendsafe.services.lending import LendingService

BOOK = [("cn-bullet", 200_000, "14d"), ("cn-annuity", 1_500_000, "6m"),
        ("cn-weekly", 400_000, "8w"), ("cn-equal-principal", 900_000, "3m"),
        ("cn-interest-only", 700_000, "3m"), ("cn-biweekly", 800_000, "12w")]


_OPEN: list[Engine] = []


@pytest.fixture(autouse=True)
def _dispose_engines() -> object:
    yield
    while _OPEN:
        _OPEN.pop().dispose()


def build_book(url: str, loans: int) -> LendingService:
    engine = make_engine(url)
    _OPEN.append(engine)
    upgrade(engine)
    service = LendingService(engine, Catalogue.load(), eod_chunk_size=5)
    service.initialise(date(2026, 3, 2))
    for i in range(loans):
        product, amount, term = BOOK[i % len(BOOK)]
        service.book(f"b{i}", product, amount + i * 100, parse_term(term))
    service.close_business(date(2026, 3, 20))
    for loan_id in range(1, loans + 1, 3):
        service.pay(loan_id, 50_000, f"k{loan_id}")
    return service


def snapshot(engine: Engine) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]],
                                      Counter[tuple[object, ...]], date]:
    with engine.connect() as connection:
        loans = [tuple(r) for r in connection.execute(select(t.loans).order_by(t.loans.c.id))]
        rows = [tuple(r) for r in connection.execute(
            select(t.installments).order_by(t.installments.c.loan_id, t.installments.c.seq))]
        journal = Counter(tuple(r)[1:] for r in connection.execute(select(t.journal)))
        open_date = connection.execute(select(t.business_calendar.c.open_date)).scalar_one()
    return loans, rows, journal, open_date


class Crash(RuntimeError):
    pass


def test_eod_interrupted_between_chunks_then_rerun_equals_clean_run(database_url: str,
                                                                    tmp_path: Path) -> None:
    clean = build_book(f"sqlite:///{tmp_path / 'clean.sqlite'}", 40)
    crashed = build_book(database_url, 40)
    clean.close_business(date(2026, 4, 30))
    chunks = {"n": 0}

    def crash_after_third(_hi: int) -> None:
        chunks["n"] += 1
        if chunks["n"] == 3:
            raise Crash("killed between chunks")

    with pytest.raises(Crash):
        crashed.close_business(date(2026, 4, 30), after_chunk=crash_after_third)
    assert snapshot(crashed.engine) != snapshot(clean.engine)  # really stopped midway
    crashed.close_business(date(2026, 4, 30))
    crashed.close_business(date(2026, 4, 30))  # and a third run changes nothing
    assert snapshot(crashed.engine) == snapshot(clean.engine)


CHILD = """
import sys
from datetime import date
from lendsafe.adapters.db.engine import make_engine
from lendsafe.services.catalogue import Catalogue
from lendsafe.services.lending import LendingService
engine = make_engine(sys.argv[1])
service = LendingService(engine, Catalogue.load(), eod_chunk_size=3)
print("ready", flush=True)
service.close_business(date(2026, 6, 30))
"""


@pytest.mark.parametrize("kill_after_seconds", [0.3, 0.9])
def test_eod_sigkilled_midway_then_rerun_equals_clean_run(database_url: str, tmp_path: Path,
                                                         kill_after_seconds: float) -> None:
    clean = build_book(f"sqlite:///{tmp_path / 'clean.sqlite'}", 60)
    victim = build_book(database_url, 60)
    clean.close_business(date(2026, 6, 30))
    process = subprocess.Popen([sys.executable, "-c", CHILD, database_url],
                               stdout=subprocess.PIPE, env={**os.environ})
    assert process.stdout is not None and process.stdout.readline().strip() == b"ready"
    time.sleep(kill_after_seconds)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    process.stdout.close()
    victim.engine.dispose()
    before_rerun = snapshot(victim.engine)[3]
    assert before_rerun < date(2026, 7, 1), "the child finished before it was killed"
    victim.close_business(date(2026, 6, 30))
    assert snapshot(victim.engine) == snapshot(clean.engine)
