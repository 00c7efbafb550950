"""Reminder outbox tables: steps, per-channel deliveries, attempts, receipts, contact data.

* ``reminders``: one row per (loan, instalment, step), unique on ``step_key``
  (``rem:{loan}:{seq}:{step}``). It carries the planned times, the step's channels in
  preference order, the dispatch state (``status``, ``due_at``, ``channel_index``) and the
  worker lease (``lease_owner``, ``lease_until``, ``inflight``).
* ``reminder_deliveries``: one row per (step, channel) actually tried, unique on the dedup
  key (``rem:{loan}:{seq}:{step}:{channel}``), with the last outcome and provider id.
* ``reminder_attempts``: append-only log of every send attempt (outcome, provider id,
  error, time, worker) including recoveries after a crash.
* ``reminder_receipts``: delivery receipts as providers posted them.
* ``reminder_contacts`` / ``reminder_addresses``: the borrower's contact preferences.

Personal data is kept minimal: addresses live only in ``reminder_addresses`` (never copied
onto reminders or attempts, whose records name the channel, not the number), in the column
``address_sealed`` with ``key_id`` naming how it was sealed. Today the seal is the identity
(``key_id = "plain"``); the encryption work plugs in through
:class:`lendsafe.services.reminders.AddressSealer` without a schema change.
"""

from __future__ import annotations

from sqlalchemy import (
    DDL,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    event,
)

from lendsafe.adapters.db.tables import ID, metadata

reminders = Table(
    "reminders",
    metadata,
    Column("id", ID, primary_key=True),
    Column("step_key", String(160), nullable=False, unique=True),
    Column("loan_id", BigInteger, nullable=False),
    Column("borrower_id", BigInteger, nullable=False),
    Column("installment_seq", Integer, nullable=False),
    Column("step_code", String(8), nullable=False),
    Column("policy_id", String(64), nullable=False),
    Column("send_date", Date, nullable=False),  # the borrower's local date of the step
    Column("due_date", Date, nullable=False),
    Column("amount_due_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("legally_required", Boolean, nullable=False),
    Column("template_id", String(64), nullable=False),
    Column("language", String(8), nullable=False),
    Column("channels", String(64), nullable=False),  # "sms,app_push,voice,email"
    Column("nominal_at", DateTime(timezone=True), nullable=False),
    Column("planned_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    # pending | awaiting_receipt | sent | delivered | cancelled | skipped | unreachable |
    # blocked | missed
    Column("status", String(16), nullable=False),
    Column("reason", Text, nullable=True),
    Column("due_at", DateTime(timezone=True), nullable=False),  # next action
    Column("channel_index", Integer, nullable=False, default=0),
    Column("round", Integer, nullable=False, default=0),
    Column("tries", Integer, nullable=False, default=0),
    Column("failovers", Integer, nullable=False, default=0),
    Column("inflight", Boolean, nullable=False, default=False),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", DateTime(timezone=True), nullable=True),
    Column("sent_channel", String(16), nullable=True),
    Column("sent_at", DateTime(timezone=True), nullable=True),
    Column("delivered_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
# what workers claim, in claim order, and what the expiry sweep reads; on PostgreSQL only
# those live statuses are indexed, so a step that is sent, delivered, cancelled, skipped or
# missed leaves the index (the history does not grow it, and cancelling or recording a step
# inserts nothing into it)
Index("ix_reminders_due", reminders.c.status, reminders.c.due_at,
      postgresql_where=reminders.c.status.in_(
          ("pending", "awaiting_receipt", "unreachable", "blocked")))
# PostgreSQL: room on every page so a worker's lease (lease_owner, lease_until, inflight:
# none indexed) is a heap-only (HOT) update that touches no index. A claim leases every row
# of a page at once, so the page needs room for a second version of each of its rows: at
# fillfactor 80 only 4,800 of 20,000 claim updates were HOT (the rest wrote into all four
# indexes), at 50 nearly all are (sixth session: claim 96 -> 76 us per step, one worker)
event.listen(reminders, "after_create",
             DDL("ALTER TABLE reminders SET (fillfactor = 50)")  # type: ignore[no-untyped-call]
             .execute_if(dialect="postgresql"))
Index("ix_reminders_loan", reminders.c.loan_id, reminders.c.installment_seq)
Index("ix_reminders_send_date", reminders.c.send_date)

reminder_deliveries = Table(
    "reminder_deliveries",
    metadata,
    Column("id", ID, primary_key=True),
    Column("dedup_key", String(180), nullable=False, unique=True),
    Column("reminder_id", BigInteger, nullable=False),
    Column("channel", String(16), nullable=False),
    Column("outcome", String(24), nullable=False),
    Column("provider_message_id", String(128), nullable=True),
    Column("error", Text, nullable=True),
    Column("tries", Integer, nullable=False, default=1),
    Column("first_at", DateTime(timezone=True), nullable=False),
    Column("last_at", DateTime(timezone=True), nullable=False),
    Column("receipt_status", String(16), nullable=True),
    Column("receipt_at", DateTime(timezone=True), nullable=True),
)
Index("ix_reminder_deliveries_reminder", reminder_deliveries.c.reminder_id)
Index("ix_reminder_deliveries_provider_id", reminder_deliveries.c.provider_message_id)

reminder_attempts = Table(
    "reminder_attempts",
    metadata,
    Column("id", ID, primary_key=True),
    Column("reminder_id", BigInteger, nullable=False),
    Column("dedup_key", String(180), nullable=False),
    Column("channel", String(16), nullable=False),
    # accepted | delivered | failed | timeout_unknown | confirmed | not_sent | unknown
    Column("outcome", String(24), nullable=False),
    Column("provider_message_id", String(128), nullable=True),
    Column("error", Text, nullable=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("worker", String(64), nullable=False),
    Column("recovery", Boolean, nullable=False, default=False),
)
Index("ix_reminder_attempts_reminder", reminder_attempts.c.reminder_id)

reminder_receipts = Table(
    "reminder_receipts",
    metadata,
    Column("id", ID, primary_key=True),
    Column("provider", String(64), nullable=False),
    Column("dedup_key", String(180), nullable=True),
    Column("provider_message_id", String(128), nullable=True),
    Column("status", String(16), nullable=False),  # delivered | failed
    Column("matched", Boolean, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
)

reminder_contacts = Table(
    "reminder_contacts",
    metadata,
    Column("borrower_id", ForeignKey("borrowers.id"), primary_key=True),
    Column("time_zone", String(64), nullable=False),
    Column("language", String(8), nullable=False),
    Column("quiet_hours", String(200), nullable=True),  # "21:00-08:00,12:00-13:00"
    Column("opt_outs", String(200), nullable=False, default=""),  # "email,marketing"
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

reminder_addresses = Table(
    "reminder_addresses",
    metadata,
    Column("borrower_id", ForeignKey("borrowers.id"), primary_key=True),
    Column("channel", String(16), primary_key=True),
    Column("address_sealed", Text, nullable=False),
    Column("key_id", String(32), nullable=False),  # "plain" until encryption lands
)

ALL_TABLES = (reminders, reminder_deliveries, reminder_attempts, reminder_receipts,
              reminder_contacts, reminder_addresses)
