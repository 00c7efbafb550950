"""``lendsafe remind``: plan reminders, run outbox workers, report (and alert), set contacts.

Channels come from ``LENDSAFE_CHANNELS_OVERRIDE=file:PATH`` (every channel to one JSON-lines
file); ``LENDSAFE_CHANNEL_FAULTS`` wraps them with injected faults for drills. The clock is
injectable: ``--now 2026-03-22T02:01:00Z`` starts the worker's clock there (it then runs on
in real time, so retries and leases still expire).

Run as ``lendsafe remind ...`` or, lighter for worker processes, ``python -m
lendsafe.entrypoints.cli_remind ...``.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Annotated, Any

import typer
from rich.console import Console

remind_app = typer.Typer(help="Repayment reminders: plan, dispatch, report.",
                         no_args_is_help=True, pretty_exceptions_enable=False)
errors = Console(stderr=True)


def _fail(message: str, code: int = 2) -> None:
    errors.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO date such as 2026-03-01") from None


def _instant(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO timestamp such as "
                                 "2026-03-22T02:01:00Z") from None
    if value.tzinfo is None:
        raise typer.BadParameter(f"{text!r} needs a UTC offset (e.g. Z or +08:00)")
    return value.astimezone(UTC)


def _engine(migrate: bool = True) -> Any:
    from lendsafe.adapters.db.engine import make_engine, upgrade
    from lendsafe.config import Settings

    engine = make_engine(Settings.from_env().database_url)
    if migrate:
        upgrade(engine)
    return engine


@contextmanager
def _service(now: datetime | None = None) -> Iterator[Any]:
    from lendsafe.config import ReminderSettings
    from lendsafe.services.reminders import ReminderService, utc_now

    clock = (lambda: now) if now is not None else utc_now
    engine = _engine()
    try:
        yield ReminderService(engine, ReminderSettings.from_env(), clock=clock)
    finally:
        engine.dispose()


@remind_app.command("plan")
def plan(on: Annotated[str, typer.Option("--date", help="Local send date to plan.")],
         as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Plan every step whose local send date is DATE (idempotent; set-based)."""
    day = _date(on)
    with _service() as service:
        created = service.plan(day)
    document = {"date": day.isoformat(), "planned": created}
    sys.stdout.write(json.dumps(document) + "\n" if as_json else
                     f"planned {created} new reminder steps for {day}\n")


@remind_app.command("worker")
def worker(
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="Worker processes.")] = 1,
    until_idle: Annotated[bool, typer.Option("--until-idle",
                                             help="Stop when nothing is due.")] = False,
    now: Annotated[str | None, typer.Option(help="Start the clock here (ISO, with offset).")]
    = None,
    batch_size: Annotated[int | None, typer.Option(min=1, max=10_000)] = None,
    seed: Annotated[int | None, typer.Option(help="Seed the retry jitter.")] = None,
    now_origin: Annotated[float | None, typer.Option(
        help="Real epoch second at which --now applies (share it so workers agree).")] = None,
) -> None:
    """Dispatch due reminders through the configured channels."""
    start = _instant(now)
    _migrate_with_retries()
    origin = time.time() if now_origin is None else now_origin
    args = [(start, origin, until_idle, batch_size, None if seed is None else seed + i)
            for i in range(concurrency)]
    if concurrency == 1:
        stats = [_run_worker(*args[0])]
    else:
        with multiprocessing.get_context("spawn").Pool(concurrency) as pool:
            stats = pool.starmap(_run_worker, args)
    sys.stdout.write(json.dumps({"workers": stats}, default=str) + "\n")


def _migrate_with_retries(attempts: int = 8) -> None:
    """Migrate once before the workers start, riding out a database restart."""
    from sqlalchemy.exc import OperationalError

    for attempt in range(attempts):
        try:
            _engine().dispose()
            return
        except OperationalError as error:
            if attempt == attempts - 1:
                _fail(f"database unavailable: {error}")
            time.sleep(min(2.0, 0.1 * 2 ** attempt))


def _run_worker(start: datetime | None, origin: float, until_idle: bool,
                batch_size: int | None, seed: int | None) -> dict[str, Any]:
    import dataclasses
    import random

    from lendsafe.adapters.channels import channels_from_env
    from lendsafe.adapters.channels.faults import faults_from_env
    from lendsafe.config import ReminderSettings
    from lendsafe.services.reminder_dispatch import Worker, fixed_clock
    from lendsafe.services.reminders import utc_now

    settings = ReminderSettings.from_env()
    if batch_size:
        settings = dataclasses.replace(settings, batch_size=batch_size)
    channels = channels_from_env(os.environ)
    if channels is None:
        raise SystemExit("no channel adapters configured: set LENDSAFE_CHANNELS_OVERRIDE="
                         "file:PATH (real SMS/push gateways are not wired yet)")
    channels = faults_from_env(channels, os.environ)
    clock = fixed_clock(start, origin=origin) if start is not None else utc_now
    engine = _engine(migrate=False)
    rng = random.Random(seed) if seed is not None else random.Random()
    restart = float(os.environ.get("LENDSAFE_REMINDER_DB_RESTART", "0"))  # drills only

    def after_claim() -> None:
        if restart and rng.random() < restart:
            engine.dispose()  # drop pooled connections: the next transaction reconnects

    worker = Worker(engine, channels, settings, clock=clock, rng=rng, after_claim=after_claim)
    try:
        return dataclasses.asdict(worker.run(until_idle=until_idle))
    finally:
        engine.dispose()


@remind_app.command("report")
def report(
    on: Annotated[str, typer.Option("--date", help="Local send date to report on.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
    check: Annotated[bool, typer.Option("--check", help="Exit 1 if anything is overdue for "
                                                        "dispatch.")] = False,
    now: Annotated[str | None, typer.Option(help="Evaluate as of this instant.")] = None,
) -> None:
    """Due, sent, delivered, failed over, missed and duplicates (also by channel and step)."""
    at = _instant(now)
    with _service(at) as service:
        document = service.report(_date(on), at)
    if as_json:
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        keys = ("due", "sent", "delivered", "failed_over", "missed", "duplicates",
                "unreachable", "blocked", "pending", "overdue_for_dispatch")
        sys.stdout.write("  ".join(f"{k}={document[k]}" for k in keys) + "\n")
    if check and document["alert"]:
        errors.print(f"[bold red]ALERT:[/] {document['overdue_for_dispatch']} reminder steps "
                     "are overdue for dispatch (is a worker running?)")
        raise typer.Exit(1)


@remind_app.command("contact")
def contact(
    borrower: Annotated[str, typer.Argument(help="Borrower reference.")],
    time_zone: Annotated[str, typer.Option("--tz", help="IANA zone, e.g. Asia/Shanghai")],
    language: Annotated[str, typer.Option(help="zh or en")] = "zh",
    address: Annotated[list[str] | None, typer.Option(help="CHANNEL=ADDRESS, repeatable")]
    = None,
    opt_out: Annotated[list[str] | None, typer.Option(help="Channel or 'marketing'")] = None,
    quiet_hours: Annotated[str | None, typer.Option(help="e.g. 21:00-08:00")] = None,
) -> None:
    """Set a borrower's contact preferences and re-plan their reminders."""
    from lendsafe.services.reminders import Contact, ReminderInputError

    addresses: dict[str, str] = {}
    for item in address or []:
        channel, sep, value = item.partition("=")
        if not sep:
            _fail(f"--address must look like sms=+8613800000000, got {item!r}")
        addresses[channel] = value
    try:
        with _service() as service:
            service.set_contact(borrower, Contact(time_zone, language, addresses,
                                                  frozenset(opt_out or []), quiet_hours))
    except (ReminderInputError, LookupError) as error:
        _fail(str(error).strip("'\""))
    sys.stdout.write(f"contact preferences of {borrower} saved\n")


if __name__ == "__main__":
    remind_app()
