"""SQL for dispatching the reminder outbox: leased claims, context, recording, sweeps.

Claims take a lease: on PostgreSQL with ``FOR UPDATE SKIP LOCKED`` (many workers at once);
on SQLite the ``BEGIN IMMEDIATE`` transaction makes each claim a single claimant. Planning
lives in :mod:`lendsafe.adapters.db.reminder_store`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Connection,
    and_,
    any_,
    case,
    func,
    literal,
    or_,
    select,
    text,
    update,
)

from lendsafe.adapters.db import tables as t
from lendsafe.adapters.db.reminder_store import CLAIMABLE, aware, outstanding_amount
from lendsafe.adapters.db.reminder_tables import (
    reminder_addresses,
    reminder_contacts,
    reminders,
)

# --------------------------------------------------------------------------- dispatch

_CLAIM_COLUMNS = ("id", "step_key", "loan_id", "borrower_id", "installment_seq", "step_code",
                  "policy_id", "due_date", "currency", "legally_required", "template_id",
                  "language", "channels", "expires_at", "status", "channel_index", "round",
                  "tries", "sent_at", "inflight", "reason")


def claim(connection: Connection, owner: str, now: datetime, lease: timedelta,
          limit: int) -> list[dict[str, Any]]:
    """Lease up to ``limit`` due steps to ``owner``; ``was_inflight`` flags crash recovery."""
    r = reminders.c
    due = and_(r.status.in_(CLAIMABLE), r.due_at <= now,
               or_(r.lease_until.is_(None), r.lease_until <= now),
               or_(r.expires_at > now, r.inflight == True,  # noqa: E712
                   r.status == "awaiting_receipt"))
    if connection.dialect.name == "postgresql":
        return _claim_postgres(connection, due, owner, now + lease, limit)
    pick = select(*(r[c] for c in _CLAIM_COLUMNS)).where(due).order_by(r.due_at).limit(limit)
    rows = [dict(row._mapping) for row in connection.execute(pick)]
    if rows:
        connection.execute(
            update(reminders).where(r.id.in_([row["id"] for row in rows])).values(
                lease_owner=owner, lease_until=now + lease,
                inflight=case((r.status == "pending", True), else_=r.inflight)))
    for row in rows:
        row["was_inflight"] = bool(row.pop("inflight"))
        row["expires_at"] = aware(row["expires_at"])
    return rows


def _claim_postgres(connection: Connection, due: Any, owner: str, until: datetime,
                    limit: int) -> list[dict[str, Any]]:
    """One statement: pick with ``FOR UPDATE SKIP LOCKED``, lease, return the old flags."""
    r = reminders.c
    picked = (select(r.id, r.inflight.label("was_inflight")).where(due).order_by(r.due_at)
              .limit(limit).with_for_update(skip_locked=True).subquery("picked"))
    statement = (
        update(reminders).where(r.id == picked.c.id)
        .values(lease_owner=owner, lease_until=until,
                inflight=case((r.status == "pending", True), else_=r.inflight))
        .returning(*(r[c] for c in _CLAIM_COLUMNS if c != "inflight"), picked.c.was_inflight))
    rows = [dict(row._mapping) for row in connection.execute(statement)]
    for row in rows:
        row["expires_at"] = aware(row["expires_at"])
    rows.sort(key=lambda row: row["id"])
    return rows


def _among(connection: Connection, column: Any, values: Sequence[int]) -> Any:
    """``column IN values``; one array parameter on PostgreSQL instead of a long list."""
    if connection.dialect.name == "postgresql":
        return column == any_(literal(list(values), ARRAY(BigInteger)))
    return column.in_(values)


def load_context(connection: Connection, rows: Sequence[Mapping[str, Any]],
                 now: datetime) -> dict[str, Any]:
    """Contacts, addresses, instalment balances and recent contacts for a claimed batch."""
    c, a, i, r = reminder_contacts.c, reminder_addresses.c, t.installments.c, reminders.c
    borrower_ids = sorted({row["borrower_id"] for row in rows})
    loan_ids = sorted({row["loan_id"] for row in rows})
    contacts = {row.borrower_id: row for row in connection.execute(
        select(c.borrower_id, c.time_zone, c.quiet_hours, c.opt_outs)
        .where(_among(connection, c.borrower_id, borrower_ids)))}
    addresses: dict[int, dict[str, tuple[str, str]]] = {}
    for row in connection.execute(select(a.borrower_id, a.channel, a.address_sealed, a.key_id)
                                  .where(_among(connection, a.borrower_id, borrower_ids))):
        addresses.setdefault(row.borrower_id, {})[row.channel] = (row.address_sealed, row.key_id)
    balances = {(row.loan_id, row.seq): (row.due_date, int(row.outstanding))
                for row in connection.execute(
                    select(i.loan_id, i.seq, i.due_date, outstanding_amount().label("outstanding"))
                    .where(_among(connection, i.loan_id, loan_ids)))}
    history: dict[int, list[datetime]] = {}
    for row in connection.execute(select(r.loan_id, r.sent_at).where(
            _among(connection, r.loan_id, loan_ids), r.sent_at.is_not(None),
            r.sent_at > now - timedelta(days=8))):
        history.setdefault(row.loan_id, []).append(aware(row.sent_at))
    return {"contacts": contacts, "addresses": addresses, "balances": balances,
            "history": history}


_RECORD_STEP = (
    "UPDATE reminders SET status = {p}, reason = {p}, due_at = {p}, channel_index = {p}, "
    "round = {p}, tries = tries + {p}, failovers = failovers + {p}, "
    "sent_channel = COALESCE(sent_channel, {p}), sent_at = COALESCE(sent_at, {p}), "
    "delivered_at = {p}, inflight = FALSE, lease_owner = NULL, lease_until = NULL, "
    "updated_at = {p} WHERE id = {p} AND lease_owner = {p}")
_RECORD_ATTEMPT = (
    "INSERT INTO reminder_attempts (reminder_id, dedup_key, channel, outcome, "
    "provider_message_id, error, at, worker, recovery) VALUES ({p}, {p}, {p}, {p}, {p}, {p}, "
    "{p}, {p}, {p})")
_RECORD_DELIVERY = (
    "INSERT INTO reminder_deliveries (dedup_key, reminder_id, channel, outcome, "
    "provider_message_id, error, tries, first_at, last_at) VALUES ({p}, {p}, {p}, {p}, {p}, "
    "{p}, 1, {p}, {p}) ON CONFLICT (dedup_key) DO UPDATE SET outcome = excluded.outcome, "
    "provider_message_id = COALESCE(excluded.provider_message_id, "
    "reminder_deliveries.provider_message_id), error = excluded.error, "
    "tries = reminder_deliveries.tries + 1, last_at = excluded.last_at")


def record(connection: Connection, owner: str, updates: Sequence[Mapping[str, Any]],
           attempts: Sequence[Mapping[str, Any]], deliveries: Sequence[Mapping[str, Any]]
           ) -> None:
    """Write a processed batch: step states (fenced by the lease), attempts, deliveries.

    The hot path of dispatch: plain DB-API ``executemany`` (SQLAlchemy's per-row parameter
    processing costs more than the statements themselves).
    """
    sqlite_db = connection.dialect.name == "sqlite"
    mark = "?" if sqlite_db else "%s"
    stamp = _sqlite_stamp if sqlite_db else _same
    if not sqlite_db:
        _record_postgres(connection, owner, updates, attempts, deliveries)
        return
    if updates:
        connection.exec_driver_sql(_RECORD_STEP.format(p=mark), [(
            u["status"], u["reason"], stamp(u["due_at"]), u["channel_index"], u["round"],
            u["tries"], u["failovers"], u["sent_channel"], stamp(u["sent_at"]),
            stamp(u["delivered_at"]), stamp(u["now"]), u["id"], owner) for u in updates])
    if attempts:
        connection.exec_driver_sql(_RECORD_ATTEMPT.format(p=mark), [(
            a["reminder_id"], a["dedup_key"], a["channel"], a["outcome"],
            a["provider_message_id"], a["error"], stamp(a["at"]), a["worker"], a["recovery"])
            for a in attempts])
    if deliveries:
        connection.exec_driver_sql(_RECORD_DELIVERY.format(p=mark), [(
            d["dedup_key"], d["reminder_id"], d["channel"], d["outcome"],
            d["provider_message_id"], d["error"], stamp(d["first_at"]), stamp(d["last_at"]))
            for d in deliveries])


_PG_STEPS = (
    "UPDATE reminders r SET status = v.status, reason = v.reason, due_at = v.due_at, "
    "channel_index = v.channel_index, round = v.round, tries = r.tries + v.tries, "
    "failovers = r.failovers + v.failovers, "
    "sent_channel = COALESCE(r.sent_channel, v.sent_channel), "
    "sent_at = COALESCE(r.sent_at, v.sent_at), delivered_at = v.delivered_at, "
    "inflight = FALSE, lease_owner = NULL, lease_until = NULL, updated_at = v.now "
    "FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::timestamptz[], %s::int[], "
    "%s::int[], %s::int[], %s::int[], %s::text[], %s::timestamptz[], %s::timestamptz[], "
    "%s::timestamptz[], %s::text[]) AS v(id, status, reason, due_at, channel_index, round, "
    "tries, failovers, sent_channel, sent_at, delivered_at, now, owner) "
    "WHERE r.id = v.id AND r.lease_owner = v.owner")
_PG_ATTEMPTS = (
    "INSERT INTO reminder_attempts (reminder_id, dedup_key, channel, outcome, "
    "provider_message_id, error, at, worker, recovery) SELECT * FROM unnest(%s::bigint[], "
    "%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::timestamptz[], "
    "%s::text[], %s::boolean[])")
_PG_DELIVERIES = (
    "INSERT INTO reminder_deliveries (dedup_key, reminder_id, channel, outcome, "
    "provider_message_id, error, tries, first_at, last_at) SELECT k, rid, ch, o, pid, e, 1, "
    "f, l FROM unnest(%s::text[], %s::bigint[], %s::text[], %s::text[], %s::text[], "
    "%s::text[], %s::timestamptz[], %s::timestamptz[]) AS v(k, rid, ch, o, pid, e, f, l) "
    "ON CONFLICT (dedup_key) DO UPDATE SET outcome = excluded.outcome, "
    "provider_message_id = COALESCE(excluded.provider_message_id, "
    "reminder_deliveries.provider_message_id), error = excluded.error, "
    "tries = reminder_deliveries.tries + 1, last_at = excluded.last_at")


def _columns(rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> list[list[Any]]:
    return [[row[name] for row in rows] for name in names]


def _record_postgres(connection: Connection, owner: str, updates: Sequence[Mapping[str, Any]],
                     attempts: Sequence[Mapping[str, Any]],
                     deliveries: Sequence[Mapping[str, Any]]) -> None:
    """PostgreSQL: each table in one statement over arrays (``unnest``).

    The lease fence compares with an array column (``r.lease_owner = v.owner``), not a
    constant: ``lease_owner`` is NULL on almost every row, and a constant made the planner
    expect one matching row and re-scan the 1,000 values for each (a 20x slower plan).
    """
    if updates:
        connection.exec_driver_sql(_PG_STEPS, (*_columns(updates, (
            "id", "status", "reason", "due_at", "channel_index", "round", "tries", "failovers",
            "sent_channel", "sent_at", "delivered_at", "now")), [owner] * len(updates)))
    if attempts:
        connection.exec_driver_sql(_PG_ATTEMPTS, tuple(_columns(attempts, (
            "reminder_id", "dedup_key", "channel", "outcome", "provider_message_id", "error",
            "at", "worker", "recovery"))))
    if deliveries:
        connection.exec_driver_sql(_PG_DELIVERIES, tuple(_columns(deliveries, (
            "dedup_key", "reminder_id", "channel", "outcome", "provider_message_id", "error",
            "first_at", "last_at"))))


@lru_cache(maxsize=4096)  # a batch stamps the same few instants thousands of times
def _sqlite_stamp(value: datetime | None) -> str | None:
    """The text SQLAlchemy stores for a UTC datetime on SQLite (so comparisons agree)."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _same(value: datetime | None) -> datetime | None:
    return value


def sweep(connection: Connection, now: datetime) -> int:
    """Report expired steps: never silently dropped, always ``missed`` (or kept as sent)."""
    r = reminders.c
    expired = and_(r.expires_at <= now, r.inflight == False)  # noqa: E712
    missed = connection.execute(
        update(reminders)
        .where(expired, r.status.in_(("pending", "unreachable", "blocked")),
               or_(r.lease_until.is_(None), r.lease_until <= now))
        .values(status="missed", updated_at=now,
                reason=func.coalesce(literal("expired; last: ") + r.reason,
                                     "not dispatched before expiry")))
    connection.execute(
        update(reminders)
        .where(expired, r.status == "awaiting_receipt",
               or_(r.lease_until.is_(None), r.lease_until <= now))
        .values(status="sent", updated_at=now,
                reason="no receipt before expiry; kept as sent (unconfirmed)"))
    return int(missed.rowcount or 0)


def next_due(connection: Connection) -> datetime | None:
    """When the next claimable step falls due (for idle workers)."""
    r = reminders.c
    ready = case((r.lease_until > r.due_at, r.lease_until), else_=r.due_at)
    value = connection.execute(select(func.min(ready)).where(
        r.status.in_(CLAIMABLE), or_(r.expires_at > r.due_at, r.inflight == True))  # noqa: E712
    ).scalar()
    if isinstance(value, str):  # SQLite: a CASE over datetimes comes back as text
        value = datetime.fromisoformat(value)
    return None if value is None else aware(value)


def analyze(connection: Connection) -> None:
    """Refresh planner statistics after bulk planning (PostgreSQL only)."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("ANALYZE reminders"))
