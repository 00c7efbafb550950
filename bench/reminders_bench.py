"""Reminder outbox benchmarks: dispatch throughput, peers (Celery, RQ), SIGKILL drills, planning.

Run from the repository root (the peers need ``bash bench/bench_venv.sh`` first)::

    .venv/bin/python bench/reminders_bench.py dispatch --db sqlite --reminders 100000
    .venv/bin/python bench/reminders_bench.py dispatch --db postgres --reminders 100000
    .venv-bench/bin/python bench/reminders_bench.py peers --reminders 20000
    .venv-bench/bin/python bench/reminders_bench.py drill --reminders 3000
    .venv/bin/python bench/reminders_bench.py plan --db postgres --loans 1000000

``dispatch`` also times a bare claim loop (the same number of processes claiming batches of
500 rows of a narrow table, nothing else) in the same database and minutes, and prints the
ratio to it with the load average: on a shared machine the ratio moves less than the rate.

Every figure is wall-clock time on this machine (2 cores shared); the peers run the same
per-message work (render the template, append one JSON line through ``FileChannel``) but
no database work at all, so the ratio is conservative for lendsafe.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, func, select, text

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = os.environ.get("LENDSAFE_TEST_POSTGRES_URL",
                          "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
PLANNED_AT = datetime(2026, 3, 1, 16, tzinfo=UTC)
DUE_AT = datetime(2026, 3, 22, 1, 0, 30, tzinfo=UTC)  # T0 of a 20-day loan, 09:00:30 Shanghai
CHANNELS = ("sms", "app_push", "voice", "email")


# --------------------------------------------------------------------------- databases


def fresh_database(kind: str, workdir: Path) -> str:
    """A new empty SQLite file or PostgreSQL database; returns its URL."""
    if kind == "sqlite":
        return f"sqlite:///{workdir / 'bench.sqlite'}"
    from sqlalchemy.engine import make_url

    name = f"lendsafe_bench_{os.getpid()}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    """Drop a PostgreSQL database made by :func:`fresh_database` (SQLite files go with the
    temporary folder)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
    admin.dispose()


def seed(url: str, loans: int) -> Engine:
    """Book one 20-day bullet loan, then clone it ``loans`` times in SQL (set-based)."""
    from lendsafe.adapters.db.engine import make_engine, upgrade
    from lendsafe.domain.lending.product import parse_term
    from lendsafe.services.catalogue import Catalogue
    from lendsafe.services.lending import LendingService

    engine = make_engine(url)
    upgrade(engine)
    lending = LendingService(engine, Catalogue.load())
    lending.initialise(date(2026, 3, 2))
    template = lending.book("tpl", "cn-bullet", 100_000, parse_term("20d"))
    with engine.begin() as connection:
        _clone(connection, template, loans)
    return engine


def _series(connection: Any, count: int) -> str:
    if connection.dialect.name == "postgresql":
        return f"(SELECT generate_series(2, {count + 1}) AS g) s"
    return (f"(WITH RECURSIVE r(g) AS (SELECT 2 UNION ALL SELECT g + 1 FROM r "
            f"WHERE g < {count + 1}) SELECT g FROM r) s")


def _clone(connection: Any, template: int, count: int) -> None:
    from lendsafe.adapters.db import tables as t

    series = _series(connection, count)
    loan_cols = [c.name for c in t.loans.c]
    inst_cols = [c.name for c in t.installments.c]
    picked = ", ".join("s.g" if c in ("id", "borrower_id") else f"l.{c}" for c in loan_cols)
    inst = ", ".join("s.g" if c == "loan_id" else f"i.{c}" for c in inst_cols)
    statements = [
        f"INSERT INTO borrowers (id, external_ref, region, created_at) SELECT s.g, "
        f"'S' || CAST(s.g AS VARCHAR(20)), NULL, b.created_at FROM borrowers b, {series} "
        f"WHERE b.id = 1",
        f"INSERT INTO loans ({', '.join(loan_cols)}) SELECT {picked} FROM loans l, {series} "
        f"WHERE l.id = {template}",
        f"INSERT INTO installments ({', '.join(inst_cols)}) SELECT {inst} FROM installments i, "
        f"{series} WHERE i.loan_id = {template}",
        f"INSERT INTO reminder_contacts (borrower_id, time_zone, language, quiet_hours, "
        f"opt_outs, updated_at) SELECT s.g, 'Asia/Shanghai', CASE WHEN s.g % 2 = 0 THEN 'zh' "
        f"ELSE 'en' END, NULL, '', b.created_at FROM borrowers b, {series} WHERE b.id = 1",
        f"INSERT INTO reminder_addresses (borrower_id, channel, address_sealed, key_id) "
        f"SELECT s.g, 'app_push', 'tok-' || CAST(s.g AS VARCHAR(20)), 'plain' FROM {series}",
        f"INSERT INTO reminder_addresses (borrower_id, channel, address_sealed, key_id) "
        f"SELECT s.g, 'sms', '+8613' || CAST(s.g AS VARCHAR(20)), 'plain' FROM {series}",
    ]
    for statement in statements:
        connection.execute(text(statement))
    if connection.dialect.name == "postgresql":
        connection.execute(text("ANALYZE"))


def plan_due_day(engine: Engine) -> tuple[int, float]:
    """Close-of-business planning of 22 March (the T0 step of every loan); seconds taken."""
    from lendsafe.services.reminders import ReminderService

    service = ReminderService(engine, clock=lambda: PLANNED_AT)
    started = time.perf_counter()
    created = service.plan(date(2026, 3, 22))
    return created, time.perf_counter() - started


# --------------------------------------------------------------------------- dispatch


def _worker_process(url: str, outbox: str, batch: int, barrier: Any, seed_value: int,
                    results: Any) -> None:
    import dataclasses

    from lendsafe.adapters.channels import FileChannel
    from lendsafe.adapters.db.engine import make_engine
    from lendsafe.config import ReminderSettings
    from lendsafe.services.reminder_dispatch import Worker, fixed_clock

    channel = FileChannel(outbox)
    engine = make_engine(url)
    settings = ReminderSettings(batch_size=batch, lease_seconds=600)
    worker = Worker(engine, {c: channel for c in CHANNELS}, settings,
                    clock=fixed_clock(DUE_AT), rng=random.Random(seed_value))
    barrier.wait()
    stats = worker.run(until_idle=True, poll_seconds=0.05)
    results.put(dataclasses.asdict(stats))
    engine.dispose()


_BARE_CLAIM = {  # the orientation figure of issue 4: a claim loop and nothing else
    "postgresql": "UPDATE bench_queue SET status = 'done' WHERE id IN (SELECT id FROM "
                  "bench_queue WHERE status = 'pending' ORDER BY id LIMIT {batch} "
                  "FOR UPDATE SKIP LOCKED)",
    "sqlite": "UPDATE bench_queue SET status = 'done' WHERE id IN (SELECT id FROM "
              "bench_queue WHERE status = 'pending' ORDER BY id LIMIT {batch})",
}


def _claim_loop_process(url: str, batch: int, barrier: Any, results: Any) -> None:
    from lendsafe.adapters.db.engine import make_engine

    engine = make_engine(url)
    statement = _BARE_CLAIM[engine.dialect.name].format(batch=int(batch))
    barrier.wait()
    moved = 0
    while True:
        with engine.begin() as connection:
            claimed = connection.exec_driver_sql(statement).rowcount
        if not claimed:
            break
        moved += claimed
    results.put(moved)
    engine.dispose()


def bare_claim_loop(engine: Engine, url: str, rows: int, workers: int,
                    batch: int = 500) -> dict[str, Any]:
    """Baseline in the same database and minutes: ``workers`` processes claiming batches of
    ``batch`` rows of a narrow queue table, with no other work (rows/s)."""
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE bench_queue (id INTEGER PRIMARY KEY, "
                                "status VARCHAR(16) NOT NULL)"))
        connection.execute(text(f"INSERT INTO bench_queue (id, status) SELECT s.g, 'pending' "
                                f"FROM {_series(connection, rows - 1)}"))
        connection.execute(text("CREATE INDEX ix_bench_queue ON bench_queue (status, id)"))
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(text("ANALYZE bench_queue"))
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(workers + 1), context.Queue()
    processes = [context.Process(target=_claim_loop_process, args=(url, batch, barrier, results))
                 for _ in range(workers)]
    for process in processes:
        process.start()
    barrier.wait()
    started = time.perf_counter()
    moved = sum(results.get() for _ in processes)
    seconds = time.perf_counter() - started
    for process in processes:
        process.join()
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE bench_queue"))
    return {"rows": moved, "batch": batch, "seconds": round(seconds, 2),
            "per_second": round(moved / seconds)}


def dispatch(kind: str, reminders: int, workers: int, batch: int) -> dict[str, Any]:
    """Seed, plan, then time ``workers`` processes draining every due reminder; the same
    number of processes running a bare claim loop in the same database is the baseline."""
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        url = fresh_database(kind, workdir)
        engine = seed(url, reminders - 1)
        created, plan_seconds = plan_due_day(engine)
        baseline = bare_claim_loop(engine, url, reminders, workers)
        outbox = workdir / "provider.jsonl"
        context = multiprocessing.get_context("spawn")
        barrier, results = context.Barrier(workers + 1), context.Queue()
        processes = [context.Process(target=_worker_process, args=(
            url, str(outbox), batch, barrier, i, results)) for i in range(workers)]
        for process in processes:
            process.start()
        barrier.wait()
        started = time.perf_counter()
        stats = [results.get() for _ in processes]
        seconds = time.perf_counter() - started
        for process in processes:
            process.join()
        lines = _provider_steps(outbox)
        with engine.connect() as connection:
            statuses = dict(connection.execute(text(
                "SELECT status, count(*) FROM reminders GROUP BY status")).all())
        engine.dispose()
        drop_database(url)
    doubles = sum(1 for n in lines.values() if n > 1)
    per_second = created / seconds
    return {"db": kind, "reminders": created, "workers": workers, "batch": batch,
            "plan_seconds": round(plan_seconds, 2), "dispatch_seconds": round(seconds, 2),
            "per_second": round(per_second), "provider_lines": sum(lines.values()),
            "doubles": doubles, "statuses": statuses,
            "sends": sum(s["sends"] for s in stats), "bare_claim_loop": baseline,
            "ratio_to_bare_claim_loop": round(per_second / baseline["per_second"], 3),
            "load_average": os.getloadavg()}


def _provider_steps(outbox: Path) -> Counter[str]:
    steps: Counter[str] = Counter()
    if not outbox.exists():
        return steps
    for line in outbox.read_text(encoding="utf-8").splitlines():
        try:
            steps[json.loads(line)["dedup_key"].rsplit(":", 1)[0]] += 1
        except (ValueError, KeyError):
            continue
    return steps


# --------------------------------------------------------------------------- peers

PEER_TASK = '''
"""Peer task for the reminder benchmark: the same per-message work as the outbox worker."""
import json, os
from datetime import date
from lendsafe.adapters.channels import FileChannel, OutboundMessage
from lendsafe.domain.reminders.messages import Money
from lendsafe.domain.reminders.templates import render

_CHANNEL = None

def deliver(payload):
    global _CHANNEL
    if _CHANNEL is None:
        _CHANNEL = FileChannel(os.environ["BENCH_OUTBOX"])
    rendered = render("reminder_due_today", payload["language"], {
        "amount": Money(payload["amount"], "CNY"), "due_date": date(2026, 3, 22),
        "loan_ref": "L%d" % payload["loan"], "how_to_pay": "in the app",
        "days_left": 0, "days_overdue": 0})
    message = OutboundMessage(payload["key"], str(payload["loan"]), "app_push", "T0",
                              payload["to"], rendered.subject, rendered.body,
                              payload["language"])
    if os.environ.get("BENCH_PLAIN_APPEND"):  # a provider without idempotency keys
        with open(os.environ["BENCH_OUTBOX"], "a") as handle:
            handle.write(json.dumps({"dedup_key": message.dedup_key}) + "\\n")
        return "appended"
    return _CHANNEL.send(message).outcome.value
'''

CELERY_APP = '''
import os
from celery import Celery
import bench_peer_task
app = Celery("bench", broker=os.environ["BENCH_REDIS"])
app.conf.update(worker_prefetch_multiplier=int(os.environ.get("BENCH_PREFETCH", "64")),
                task_acks_late=bool(os.environ.get("BENCH_ACKS_LATE")),
                task_reject_on_worker_lost=bool(os.environ.get("BENCH_ACKS_LATE")),
                broker_transport_options={"visibility_timeout": 5},
                task_ignore_result=True, worker_hijack_root_logger=False)

@app.task(name="deliver")
def deliver(payload):
    return bench_peer_task.deliver(payload)
'''


def _payloads(count: int) -> list[dict[str, Any]]:
    return [{"key": f"rem:{k}:1:T0:app_push", "loan": k, "amount": 100_986,
             "language": ("zh", "en")[k % 2], "to": f"tok-{k}"} for k in range(count)]


def _peer_env(workdir: Path, outbox: Path, **extra: str) -> dict[str, str]:
    (workdir / "bench_peer_task.py").write_text(PEER_TASK)
    (workdir / "bench_celery_app.py").write_text(CELERY_APP)
    return {**os.environ, "PYTHONPATH": f"{workdir}:{ROOT / 'src'}",
            "BENCH_OUTBOX": str(outbox), "BENCH_REDIS": REDIS, **extra}


def _flush_redis() -> None:
    import redis

    redis.Redis.from_url(REDIS).flushdb()


def _enqueue_celery(env: dict[str, str], count: int) -> None:
    sys.path[:0] = env["PYTHONPATH"].split(":")
    os.environ.update({k: v for k, v in env.items() if k.startswith("BENCH_")})
    import bench_celery_app

    with bench_celery_app.app.producer_or_acquire() as producer:
        for payload in _payloads(count):
            bench_celery_app.deliver.apply_async((payload,), producer=producer)


def _enqueue_rq(env: dict[str, str], count: int) -> None:
    import redis
    from rq import Queue

    sys.path[:0] = env["PYTHONPATH"].split(":")
    queue = Queue("bench", connection=redis.Redis.from_url(REDIS))
    jobs = [Queue.prepare_data("bench_peer_task.deliver", (p,)) for p in _payloads(count)]
    for start in range(0, len(jobs), 1000):
        queue.enqueue_many(jobs[start:start + 1000])


def _start_peer(kind: str, env: dict[str, str], workdir: Path, index: int) -> Any:
    bin_dir = Path(sys.executable).parent
    if kind == "celery":
        command = [str(bin_dir / "celery"), "-A", "bench_celery_app", "worker", "-c", "2",
                   "-P", "prefork", "-l", "WARNING", "-n", f"bench{index}@%h",
                   "--without-gossip", "--without-mingle", "--without-heartbeat"]
    else:
        command = [str(bin_dir / "rq"), "worker", "bench", "--url", REDIS, "--burst",
                   "--worker-class", "rq.worker.SimpleWorker", "-q", "--name",
                   f"bench-{index}-{time.time_ns()}"]
    log = (workdir / f"{kind}-{index}.log").open("ab")
    return subprocess.Popen(command, env=env, cwd=workdir, stdout=log, stderr=log,
                            start_new_session=True)


def _wait_lines(outbox: Path, count: int, limit: float) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        if outbox.exists() and outbox.read_bytes().count(b"\n") >= count:
            return time.perf_counter() - started
        time.sleep(0.02)
    done = outbox.read_bytes().count(b"\n") if outbox.exists() else 0
    raise TimeoutError(f"only {done} of {count} lines")


def peer(kind: str, count: int) -> dict[str, Any]:
    """Throughput of the same message work through a Celery or RQ worker (2 processes)."""
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        outbox = workdir / "provider.jsonl"
        env = _peer_env(workdir, outbox)
        _flush_redis()
        (_enqueue_celery if kind == "celery" else _enqueue_rq)(env, count)
        processes = ([_start_peer(kind, env, workdir, 0)] if kind == "celery" else
                     [_start_peer(kind, env, workdir, i) for i in range(2)])
        seconds = _wait_lines(outbox, count, 900)
        for process in processes:
            _stop(process)
    return {"peer": kind, "reminders": count, "processes": 2, "seconds": round(seconds, 2),
            "per_second": round(count / seconds)}


def _stop(process: Any, sig: int = signal.SIGTERM) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


# --------------------------------------------------------------------------- drills


def drill_peer(kind: str, count: int, kills: int, acks_late: bool) -> dict[str, Any]:
    """SIGKILL workers at random moments; count doubles and losses from the sink."""
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        outbox = workdir / "provider.jsonl"
        extra = {"BENCH_PLAIN_APPEND": "1", "BENCH_PREFETCH": "4"}
        if acks_late:
            extra["BENCH_ACKS_LATE"] = "1"
        env = _peer_env(workdir, outbox, **extra)
        _flush_redis()
        (_enqueue_celery if kind == "celery" else _enqueue_rq)(env, count)
        for index in range(kills + 1):
            process = _start_peer(kind, env, workdir, index)
            if index < kills:
                time.sleep(rng.uniform(0.8, 2.0))
                _stop(process, signal.SIGKILL)
        time.sleep(8)  # Celery: visibility timeout 5 s, then redelivery
        _wait_quiet(outbox)
        _stop(process)
        lines = _provider_steps(outbox)
    expected = {f"rem:{k}:1:T0" for k in range(count)}
    return {"peer": kind, "acks_late": acks_late, "reminders": count, "kills": kills,
            "doubles": sum(1 for k, n in lines.items() if n > 1),
            "lost": len(expected - set(lines))}


def _wait_quiet(outbox: Path, quiet_seconds: float = 6.0, limit: float = 300) -> None:
    started, last, seen = time.perf_counter(), time.perf_counter(), -1
    while time.perf_counter() - started < limit:
        size = outbox.stat().st_size if outbox.exists() else 0
        if size != seen:
            seen, last = size, time.perf_counter()
        elif time.perf_counter() - last > quiet_seconds:
            return
        time.sleep(0.2)


def drill_lendsafe(kind: str, count: int, kills: int) -> dict[str, Any]:
    """The same drill on the outbox: SIGKILL ``lendsafe remind worker`` processes."""
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        url = fresh_database(kind, workdir)
        engine = seed(url, count - 1)
        plan_due_day(engine)
        outbox = workdir / "provider.jsonl"
        env = {**os.environ, "LENDSAFE_DATABASE_URL": url,
               "LENDSAFE_CHANNELS_OVERRIDE": f"file:{outbox}",
               "LENDSAFE_CHANNEL_FAULTS": "slow_ms=1", "LENDSAFE_REMINDER_LEASE_SECONDS": "3"}
        command = [sys.executable, "-m", "lendsafe.entrypoints.cli_remind", "worker",
                   "--until-idle", "--now", DUE_AT.isoformat(), "--now-origin",
                   str(time.time()), "--batch-size", "50"]
        for index in range(kills + 1):
            process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
            if index < kills:
                time.sleep(rng.uniform(0.8, 2.0))
                process.send_signal(signal.SIGKILL)
            process.wait()
        lines = _provider_steps(outbox)
        with engine.connect() as connection:
            expected = set(connection.execute(text(
                "SELECT step_key FROM reminders WHERE status NOT IN ('skipped', 'cancelled')"
            )).scalars())  # the template loan's borrower has no contact: skipped
        engine.dispose()
        drop_database(url)
    return {"lendsafe": kind, "reminders": count, "kills": kills,
            "doubles": sum(1 for n in lines.values() if n > 1),
            "lost": len(expected - set(lines))}


# --------------------------------------------------------------------------- planning


def planning(kind: str, loans: int) -> dict[str, Any]:
    """Plan close of business for ``loans`` loans, twice (the second creates nothing)."""
    with tempfile.TemporaryDirectory() as folder:
        url = fresh_database(kind, Path(folder))
        started = time.perf_counter()
        engine = seed(url, loans - 1)
        seed_seconds = time.perf_counter() - started
        created, first = plan_due_day(engine)
        again, second = plan_due_day(engine)
        with engine.connect() as connection:
            total = connection.execute(select(func.count()).select_from(text("reminders")))
            rows = int(total.scalar() or 0)
        engine.dispose()
        drop_database(url)
    return {"db": kind, "loans": loans, "seed_seconds": round(seed_seconds, 1),
            "planned": created, "plan_seconds": round(first, 2), "replanned": again,
            "replan_seconds": round(second, 2), "rows": rows,
            "loans_per_second": round(loans / first)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["dispatch", "peers", "drill", "plan"])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--reminders", type=int, default=100_000)
    parser.add_argument("--loans", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--only-lendsafe", action="store_true")
    args = parser.parse_args()
    kind = "postgresql" if args.db == "postgres" else "sqlite"
    if args.what == "dispatch":
        result: Any = dispatch(kind, args.reminders, args.workers, args.batch)
    elif args.what == "peers":
        result = [peer("celery", args.reminders), peer("rq", args.reminders)]
    elif args.what == "drill" and args.only_lendsafe:
        result = drill_lendsafe(kind, args.reminders, args.kills)
    elif args.what == "drill":
        result = [drill_peer("celery", args.reminders, args.kills, False),
                  drill_peer("celery", args.reminders, args.kills, True),
                  drill_peer("rq", args.reminders, args.kills, False),
                  drill_lendsafe(kind, args.reminders, args.kills)]
    else:
        result = planning(kind, args.loans)
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
