"""Reminder use cases: plan in the same transaction as the change, contacts, receipts, report.

:class:`ReminderService` is a :class:`~lendsafe.services.lending.LendingService` listener:

* ``loan.book`` plans the new loan's steps over the **planning horizon** - the steps sent
  from today through ``horizon_days`` (default 2) ahead - in the booking's transaction;
* ``loan.pay`` cancels the steps a payment made pointless; when it rebuilt the schedule
  it re-plans the loan: steps are re-timed in place (same step keys) or cancelled if gone;
* ``loan.restructure``, ``relief.apply``, ``relief.accept`` (and any other change whose
  events name loans) re-plan those loans over the horizon the same way;
* ``eod.close`` plans the next day's steps for every active loan, set-based and
  idempotently (planning twice creates nothing new), revives a step a schedule change had
  cancelled (never sent) when its instalment is due again on that day, and cancels the
  open steps of loans charged off that day (they go to collections).

Nothing can be lost between the two: the schedule a change writes is in the same
transaction, and every step is planned at the latest by the close of business the day
before it is sent. The outbox holds a few days of steps, not a loan's whole life, so a
change of 100,000 loans (a relief event) re-plans days, not months, of reminders.

A relief event also queues one notice per covered loan (``[[notices]]`` in the policy:
``RLF-A`` when the deferral was applied, ``RLF-O`` when it is offered), dispatched through
the same channels, quiet hours, caps and receipts as every reminder.

Dispatch lives in :mod:`lendsafe.services.reminder_dispatch`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, Engine, delete, func, select, update

from lendsafe.adapters.db import reminder_dispatch_store as dstore
from lendsafe.adapters.db import reminder_store as store
from lendsafe.adapters.db import tables as t
from lendsafe.adapters.db.reminder_tables import (
    reminder_addresses,
    reminder_contacts,
    reminder_deliveries,
    reminder_receipts,
    reminders,
)
from lendsafe.config import ReminderSettings
from lendsafe.domain.reminders.dispatch import Backoff, StepState, after_receipt
from lendsafe.domain.reminders.messages import SUPPORTED_LANGUAGES
from lendsafe.domain.reminders.policy import (
    CHANNELS,
    OPT_OUT_ALL_OPTIONAL,
    ReminderPolicy,
    default_policy,
)

Clock = Callable[[], datetime]
RELIEF_APPLIED, RELIEF_OFFERED = "RLF-A", "RLF-O"  # notice codes in the policy
_REPLAN_CHUNK = 20_000  # loan ids per set of statements (long lists use the scope table)


def _chunks(loan_ids: list[int]) -> Iterable[list[int]]:
    for start in range(0, len(loan_ids), _REPLAN_CHUNK):
        yield loan_ids[start:start + _REPLAN_CHUNK]


def utc_now() -> datetime:
    """The real clock (entry points inject their own for tests and ``--now``)."""
    return datetime.now(UTC)


class ReminderInputError(ValueError):
    """Bad reminder input (unknown channel, zone, language, ...), with a clear message."""


class AddressSealer(Protocol):
    """The seam for encrypting personal data: seal an address for storage, open it to send."""

    def seal(self, address: str) -> tuple[str, str]:
        """``(sealed, key_id)`` for storage."""
        ...

    def open(self, sealed: str, key_id: str) -> str:
        """The address back from what :meth:`seal` stored."""
        ...


class PlainSealer:
    """Stores addresses as they are (``key_id="plain"``) until the encryption work lands."""

    def seal(self, address: str) -> tuple[str, str]:
        """Identity seal."""
        return address, "plain"

    def open(self, sealed: str, key_id: str) -> str:
        """Identity open; refuses keys it does not know."""
        if key_id != "plain":
            raise ReminderInputError(f"address sealed with unknown key {key_id!r}")
        return sealed


@dataclass(frozen=True)
class Contact:
    """A borrower's contact preferences as entered (validated by :func:`check_contact`)."""

    time_zone: str
    language: str
    addresses: Mapping[str, str] = field(default_factory=dict)
    opt_outs: frozenset[str] = frozenset()
    quiet_hours: str | None = None


def check_contact(contact: Contact) -> None:
    """Refuse unknown channels, zones, languages and malformed quiet hours, naming them."""
    problems = [f"unknown channel {c!r} (known: {', '.join(CHANNELS)})"
                for c in sorted(set(contact.addresses) - set(CHANNELS))]
    problems += [f"unknown opt-out {c!r}" for c in
                 sorted(contact.opt_outs - set(CHANNELS) - {OPT_OUT_ALL_OPTIONAL})]
    problems += [f"empty address for {c!r}" for c, a in contact.addresses.items() if not a]
    if contact.language not in SUPPORTED_LANGUAGES:
        problems.append(f"unsupported language {contact.language!r}")
    try:
        ZoneInfo(contact.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"unknown time zone {contact.time_zone!r}")
    try:
        store.parse_quiet_hours(contact.quiet_hours)
    except ValueError as error:
        problems.append(f"bad quiet hours {contact.quiet_hours!r}: {error}")
    if problems:
        raise ReminderInputError("; ".join(problems))


class ReminderService:
    """Planning, contacts, receipts and the report over one database."""

    def __init__(self, engine: Engine, settings: ReminderSettings | None = None, *,
                 policy: ReminderPolicy | None = None, clock: Clock = utc_now,
                 sealer: AddressSealer | None = None) -> None:
        self.engine = engine
        self.settings = settings or ReminderSettings()
        self.policy = policy or default_policy()
        self.clock = clock
        self.sealer = sealer or PlainSealer()

    # -- listener --------------------------------------------------------------------
    def on_change(self, change: Any) -> None:
        """Listener for lending changes; runs inside the change's own transaction.

        Close of business plans the next day; any other change that names loans in its
        events (booking, payment, restructuring, relief) re-plans those loans over the
        planning horizon (see the module docstring).
        """
        if change.action == "eod.close":
            store.cancel_charged_off(change.connection, change.business_date, self.clock())
            self.plan_day(change.connection, change.business_date + timedelta(days=1))
            return
        loan_ids = sorted({int(e.loan_id) for e in change.events if hasattr(e, "loan_id")})
        if not loan_ids:
            return
        on = getattr(change, "business_date", None)
        if change.action == "loan.book":  # a new loan has nothing stale to cancel
            self._plan_loans(change.connection, loan_ids, self.horizon(on))
        elif change.action == "loan.pay" and not getattr(change, "schedule_changed", True):
            # same due dates: only the steps the payment made pointless change (amounts are
            # read at send time)
            store.cancel_stale(change.connection, loan_ids, self.clock())
        else:
            self.replan_loans(change.connection, loan_ids, on)
        for code, reference, ids in _notices(change):
            self.plan_notices(change.connection, code, reference, ids)

    def plan_notices(self, connection: Connection, code: str, reference: str,
                     loan_ids: list[int]) -> int:
        """Queue the event notice ``code`` once per loan (idempotent per ``reference``)."""
        notice, count = self.policy.step(code), 0
        for chunk in _chunks(loan_ids):
            count += store.plan_notices(
                connection, self.policy, notice, reference, chunk, now=self.clock(),
                default_tz=self.settings.default_time_zone)
        return count

    def horizon(self, on: date | None = None) -> tuple[date, date]:
        """The local send dates a change plans: from the oldest step that may still be sent
        (the longest expiry back) through ``horizon_days`` after the later of today and the
        business date ``on``; close of business plans every later day the day before."""
        now = self.clock().astimezone(UTC)
        expiry = max((s.expiry for s in self.policy.steps), default=timedelta(0))
        since = (now - expiry).date() - timedelta(days=1)
        until = max(now.date(), on or now.date()) + timedelta(days=self.settings.horizon_days)
        return since, until

    def _plan_loans(self, connection: Connection, loan_ids: list[int],
                    window: tuple[date, date]) -> int:
        scope = store.PlanScope(loan_ids=tuple(loan_ids), since=window[0], until=window[1])
        return store.plan(connection, self.policy, scope, not_before=self.clock(),
                          default_tz=self.settings.default_time_zone, replace=True)

    def replan_loans(self, connection: Connection, loan_ids: list[int],
                     on: date | None = None) -> int:
        """Re-plan these loans' steps over the horizon; cancel steps made pointless."""
        now, count, window = self.clock(), 0, self.horizon(on)
        for chunk in _chunks(loan_ids):
            count += self._plan_loans(connection, chunk, window)
            store.cancel_stale(connection, chunk, now)
        return count

    def plan_day(self, connection: Connection, day: date) -> int:
        """Plan the steps whose local send date is ``day`` (idempotent, set-based)."""
        return store.plan(connection, self.policy, store.PlanScope(send_dates=(day,)),
                          not_before=self.clock(), default_tz=self.settings.default_time_zone,
                          replace=False)

    def plan(self, day: date) -> int:
        """``lendsafe remind plan --date D``: plan ``day`` in its own transaction."""
        with self.engine.begin() as connection:
            created = self.plan_day(connection, day)
            dstore.analyze(connection)
        return created

    # -- contacts --------------------------------------------------------------------
    def set_contact(self, borrower_ref: str, contact: Contact) -> int:
        """Store a borrower's preferences and re-plan their loans; returns the borrower id."""
        check_contact(contact)
        own = store.parse_quiet_hours(contact.quiet_hours)
        if own is not None and not own.leaves_time_with(self.policy.legal_quiet_hours):
            raise ReminderInputError(
                f"quiet hours {contact.quiet_hours!r} together with the legal quiet hours "
                "leave no minute of the day to send a legally required notice; choose a "
                "shorter window")
        now = self.clock()
        with self.engine.begin() as connection:
            borrower_id = connection.execute(select(t.borrowers.c.id).where(
                t.borrowers.c.external_ref == borrower_ref)).scalar()
            if borrower_id is None:
                raise LookupError(f"no borrower {borrower_ref!r}")
            _write_contact(connection, int(borrower_id), contact, self.sealer, now)
            loans = [int(i) for i in connection.execute(select(t.loans.c.id).where(
                t.loans.c.borrower_id == borrower_id)).scalars()]
            if loans:
                self.replan_loans(connection, loans)
        return int(borrower_id)

    # -- receipts --------------------------------------------------------------------
    def record_receipt(self, provider: str, *, dedup_key: str | None,
                       provider_message_id: str | None, delivered: bool) -> bool:
        """Store a provider's receipt and move the step on; returns whether it matched."""
        if not dedup_key and not provider_message_id:
            raise ReminderInputError("a receipt needs dedup_key or provider_message_id")
        now = self.clock()
        with self.engine.begin() as connection:
            delivery = _find_delivery(connection, dedup_key, provider_message_id)
            connection.execute(reminder_receipts.insert().values(
                provider=provider, dedup_key=dedup_key, provider_message_id=provider_message_id,
                status="delivered" if delivered else "failed", matched=delivery is not None,
                received_at=now))
            if delivery is None:
                return False
            connection.execute(update(reminder_deliveries).where(
                reminder_deliveries.c.id == delivery.id).values(
                receipt_status="delivered" if delivered else "failed", receipt_at=now))
            self._apply_receipt(connection, delivery, delivered, now)
        return True

    def _apply_receipt(self, connection: Connection, delivery: Any, delivered: bool,
                       now: datetime) -> None:
        r = reminders.c
        row = connection.execute(select(reminders).where(r.id == delivery.reminder_id)).first()
        if row is None:
            return
        channels = tuple(row.channels.split(","))
        if delivered and row.status in ("awaiting_receipt", "sent"):
            connection.execute(update(reminders).where(
                r.id == row.id, r.status == row.status).values(
                status="delivered", delivered_at=now, updated_at=now))
            return
        if delivered or row.status != "awaiting_receipt" or (
                channels[row.channel_index] != delivery.channel):
            return
        state = StepState(channels, row.channel_index, row.round, store.aware(row.expires_at))
        decision = after_receipt(state, False, now, self.backoff(), 0.5)
        connection.execute(update(reminders).where(
            r.id == row.id, r.status == "awaiting_receipt",
            r.channel_index == row.channel_index).values(
            status=decision.status, due_at=decision.due_at, reason=decision.reason,
            channel_index=decision.channel_index, round=decision.round,
            failovers=r.failovers + int(decision.failover), updated_at=now))

    def verify_signature(self, provider: str, body: bytes, signature: str | None) -> bool:
        """HMAC-SHA256 of the raw body with the provider's shared secret (constant time)."""
        secrets = dict(self.settings.receipt_secrets)
        secret = secrets.get(provider)
        if not secret or not signature:
            return False
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        given = signature.removeprefix("sha256=")
        return hmac.compare_digest(expected, given)

    def backoff(self) -> Backoff:
        """The retry backoff from the settings."""
        return Backoff(base=timedelta(seconds=self.settings.backoff_base_seconds),
                       cap=timedelta(seconds=self.settings.backoff_cap_seconds))

    # -- report ----------------------------------------------------------------------
    def report(self, day: date, now: datetime | None = None) -> dict[str, Any]:
        """Counts for the steps whose local send date is ``day``, plus the overdue alert."""
        now = now or self.clock()
        with self.engine.connect() as connection:
            return build_report(connection, day, now,
                                timedelta(seconds=self.settings.overdue_grace_seconds))


def _notices(change: Any) -> list[tuple[str, str, list[int]]]:
    """The event notices a change asks for: a relief event applied (``RLF-A``, the loan's
    repayments were deferred) or offered (``RLF-O``) - one per loan and event."""
    if change.action != "relief.apply":
        return []
    wanted: dict[tuple[str, str], list[int]] = {}
    for event in change.events:
        if hasattr(event, "event_id") and hasattr(event, "offered"):
            code = RELIEF_OFFERED if event.offered else RELIEF_APPLIED
            wanted.setdefault((code, f"relief:{event.event_id}"), []).append(int(event.loan_id))
    return [(code, reference, sorted(ids)) for (code, reference), ids in sorted(wanted.items())]


def _write_contact(connection: Connection, borrower_id: int, contact: Contact,
                   sealer: AddressSealer, now: datetime) -> None:
    c, a = reminder_contacts.c, reminder_addresses.c
    values = {"time_zone": contact.time_zone, "language": contact.language,
              "quiet_hours": contact.quiet_hours or None,
              "opt_outs": ",".join(sorted(contact.opt_outs)), "updated_at": now}
    found = connection.execute(update(reminder_contacts).where(
        c.borrower_id == borrower_id).values(values)).rowcount
    if not found:
        connection.execute(reminder_contacts.insert().values(borrower_id=borrower_id, **values))
    connection.execute(delete(reminder_addresses).where(a.borrower_id == borrower_id))
    rows = []
    for channel, address in sorted(contact.addresses.items()):
        sealed, key_id = sealer.seal(address)
        rows.append({"borrower_id": borrower_id, "channel": channel,
                     "address_sealed": sealed, "key_id": key_id})
    if rows:
        connection.execute(reminder_addresses.insert(), rows)


def _find_delivery(connection: Connection, dedup_key: str | None,
                   provider_message_id: str | None) -> Any:
    d = reminder_deliveries.c
    if dedup_key:
        return connection.execute(select(reminder_deliveries).where(
            d.dedup_key == dedup_key)).first()
    return connection.execute(select(reminder_deliveries).where(
        d.provider_message_id == provider_message_id)).first()


_SENT = ("sent", "delivered", "awaiting_receipt")
_NOT_DUE = ("cancelled", "skipped")
_MAYBE_OUT = ("accepted", "delivered", "confirmed", "unknown", "timeout_unknown")


def build_report(connection: Connection, day: date, now: datetime,
                 grace: timedelta) -> dict[str, Any]:
    """The report document (see :meth:`ReminderService.report`)."""
    r = reminders.c
    rows = connection.execute(
        select(r.status, r.step_code, r.sent_channel, func.count(), func.sum(r.failovers))
        .where(r.send_date == day)
        .group_by(r.status, r.step_code, r.sent_channel)).all()
    report = _tally(rows)
    report["duplicates"] = _duplicates(connection, day)
    overdue = _overdue(connection, now, grace)
    report.update(date=day.isoformat(), now=now.isoformat(), overdue_for_dispatch=overdue,
                  alert=overdue > 0)
    return report


def _tally(rows: Iterable[Any]) -> dict[str, Any]:
    totals: dict[str, int] = {k: 0 for k in (
        "due", "sent", "delivered", "failed_over", "missed", "pending", "cancelled",
        "skipped", "unreachable", "blocked", "awaiting_receipt")}
    by_status: dict[str, int] = {}
    by_step: dict[str, dict[str, int]] = {}
    by_channel: dict[str, dict[str, int]] = {}
    for status, step, channel, count, failovers in rows:
        count, failovers = int(count), int(failovers or 0)
        by_status[status] = by_status.get(status, 0) + count
        step_counts = by_step.setdefault(step, {"due": 0, "sent": 0, "missed": 0})
        due = status not in _NOT_DUE
        totals["due"] += count if due else 0
        step_counts["due"] += count if due else 0
        totals["failed_over"] += failovers
        if status in _SENT:
            totals["sent"] += count
            step_counts["sent"] += count
            per = by_channel.setdefault(channel or "?", {"sent": 0, "delivered": 0})
            per["sent"] += count
            per["delivered"] += count if status == "delivered" else 0
        if status == "missed":
            step_counts["missed"] += count
    for status in ("delivered", "missed", "pending", "cancelled", "skipped", "unreachable",
                   "blocked", "awaiting_receipt"):
        totals[status] = by_status.get(status, 0)
    return {**totals, "by_status": by_status, "by_step": by_step, "by_channel": by_channel}


def _duplicates(connection: Connection, day: date) -> int:
    d, r = reminder_deliveries.c, reminders.c
    per_step = (select(d.reminder_id, func.count().label("n"))
                .select_from(reminder_deliveries.join(reminders, r.id == d.reminder_id))
                .where(r.send_date == day, d.outcome.in_(_MAYBE_OUT))
                .group_by(d.reminder_id).subquery())
    return int(connection.execute(select(func.count()).select_from(per_step)
                                  .where(per_step.c.n > 1)).scalar() or 0)


def _overdue(connection: Connection, now: datetime, grace: timedelta) -> int:
    r = reminders.c
    cutoff = now - grace
    return int(connection.execute(select(func.count()).where(
        r.status == "pending", r.due_at < cutoff, r.expires_at > now,
        (r.lease_until.is_(None)) | (r.lease_until < now))).scalar() or 0)
