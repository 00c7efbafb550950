"""SQL for the reminder outbox: set-based planning, leased claims, recording, sweeps, reports.

Planning is set-based: the few distinct (time zone, quiet hours, due date, step)
combinations are timed in Python with the pure quiet-hours rules (DST-safe), written to a
temporary *slot* table, and one ``INSERT ... SELECT ... ON CONFLICT`` joins slots with the
unsettled instalments - never a statement per loan. Claims take a lease: on PostgreSQL with
``FOR UPDATE SKIP LOCKED`` (many workers at once); on SQLite the ``BEGIN IMMEDIATE``
transaction makes each claim a single claimant.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Column,
    Connection,
    Date,
    DateTime,
    MetaData,
    String,
    Table,
    and_,
    any_,
    case,
    cast,
    exists,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from lendsafe.adapters.db import tables as t
from lendsafe.adapters.db.reminder_tables import (
    reminder_addresses,
    reminder_contacts,
    reminders,
)
from lendsafe.domain.reminders.policy import ReminderPolicy, ReminderStep
from lendsafe.domain.reminders.quiet_hours import (
    QuietHours,
    QuietWindow,
    next_allowed_time,
    resolve_local,
)

OPEN_STATUSES = ("pending", "unreachable", "skipped", "blocked")
CLAIMABLE = ("pending", "awaiting_receipt")

_slots_metadata = MetaData()
slots = Table(
    "reminder_slots_tmp", _slots_metadata,
    Column("time_zone", String(64)), Column("quiet_hours", String(200)),
    Column("due_date", Date), Column("step_code", String(8)), Column("send_date", Date),
    Column("nominal_at", DateTime(timezone=True)), Column("planned_at", DateTime(timezone=True)),
    Column("expires_at", DateTime(timezone=True)), Column("template_id", String(64)),
    Column("legally_required", Boolean), Column("channels", String(64)),
    prefixes=["TEMPORARY"],
)


def aware(value: datetime) -> datetime:
    """SQLite hands back naive UTC datetimes; make every datetime aware UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_quiet_hours(textual: str | None) -> QuietHours | None:
    """``"21:00-08:00,12:00-13:00"`` -> :class:`QuietHours` (``None``/empty -> ``None``)."""
    if not textual:
        return None
    windows = []
    for item in textual.split(","):
        start, _, end = item.strip().partition("-")
        windows.append(QuietWindow(_clock(start), _clock(end)))
    return QuietHours(tuple(windows))


def _clock(value: str) -> Any:
    from datetime import time

    hours, _, minutes = value.partition(":")
    return time(int(hours), int(minutes))


def _insert_for(connection: Connection) -> Any:
    return (postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert)


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class PlanScope:
    """Which instalments to plan: some loans (all their steps) or steps sent on some dates."""

    loan_ids: tuple[int, ...] | None = None
    send_dates: tuple[date, ...] | None = None


_I = t.installments.c
_OUTSTANDING = (_I.principal_due_minor + _I.interest_due_minor + _I.fee_due_minor
                - _I.principal_paid_minor - _I.interest_paid_minor - _I.fee_paid_minor)


def _outstanding() -> Any:
    """What is still owed on an instalment (one shared SQL expression)."""
    return _OUTSTANDING


def _candidates(policy: ReminderPolicy, scope: PlanScope, default_tz: str) -> Any:
    i, loans, contacts = t.installments.c, t.loans.c, reminder_contacts.c
    query = (
        select(
            i.loan_id, i.seq, i.due_date, _outstanding().label("outstanding"),
            loans.currency, loans.borrower_id,
            func.coalesce(contacts.time_zone, default_tz).label("time_zone"),
            func.coalesce(contacts.quiet_hours, "").label("quiet_hours"),
            func.coalesce(contacts.language, policy.default_language).label("language"),
            func.coalesce(contacts.opt_outs, "").label("opt_outs"),
        )
        .select_from(t.installments.join(t.loans, t.loans.c.id == i.loan_id)
                     .outerjoin(reminder_contacts,
                                contacts.borrower_id == loans.borrower_id))
        .where(loans.status == "active", _outstanding() > 0)
    )
    if scope.loan_ids is not None:
        query = query.where(i.loan_id.in_(scope.loan_ids))
    if scope.send_dates is not None:
        dues = {d - timedelta(days=s.offset_days) for d in scope.send_dates for s in policy.steps}
        query = query.where(i.due_date.in_(sorted(dues)))
    return query.subquery("candidates")


def _slot_rows(
    combos: Iterable[tuple[str, str, date]], policy: ReminderPolicy, scope: PlanScope,
    not_before: datetime,
) -> list[dict[str, Any]]:
    """Time every (zone, quiet hours, due date, step) once, with the DST-safe pure rules."""
    from zoneinfo import ZoneInfo

    rows = []
    for zone_name, quiet_text, due in combos:
        tz = ZoneInfo(zone_name)
        quiet = _quiet(quiet_text, policy.default_quiet_hours, policy.legal_quiet_hours)
        for step in policy.steps:
            send_date = due + timedelta(days=step.offset_days)
            if scope.send_dates is not None and send_date not in scope.send_dates:
                continue
            nominal = _resolve_local(send_date, step.send_at, tz)
            planned = _next_allowed(max(nominal, not_before), tz, quiet)
            if planned >= nominal + step.expiry:
                continue  # already past: nothing to plan (the report shows earlier rows)
            rows.append(_slot(zone_name, quiet_text, due, step, send_date, nominal, planned))
    return rows


@lru_cache(maxsize=1_024)
def _quiet(quiet_text: str, default: Any, legal: Any) -> Any:
    """The borrower's quiet hours (or the policy default) joined with the legal window."""
    own = parse_quiet_hours(quiet_text) or default
    return own.union(legal)


@lru_cache(maxsize=65_536)
def _resolve_local(day: date, at: Any, tz: Any) -> datetime:
    """Memoised :func:`resolve_local` (pure; re-planning asks the same few questions)."""
    return resolve_local(day, at, tz)


@lru_cache(maxsize=65_536)
def _next_allowed(candidate: datetime, tz: Any, quiet: Any) -> datetime:
    """Memoised :func:`next_allowed_time` (pure, keyed by its hashable arguments)."""
    return next_allowed_time(candidate, tz, quiet)


def _slot(zone: str, quiet: str, due: date, step: ReminderStep, send_date: date,
          nominal: datetime, planned: datetime) -> dict[str, Any]:
    if quote(step.code, safe="+") != step.code:
        raise ValueError(f"step code {step.code!r} needs percent-encoding; not supported in SQL")
    return {
        "time_zone": zone, "quiet_hours": quiet, "due_date": due, "step_code": step.code,
        "send_date": send_date, "nominal_at": nominal, "planned_at": planned,
        "expires_at": nominal + step.expiry, "template_id": step.template_id,
        "legally_required": step.legally_required, "channels": ",".join(step.channels),
    }


def _reachable(candidates: Any) -> Any:
    """SQL: some address of the borrower is on the step's channel list and not opted out."""
    a, s = reminder_addresses.c, slots.c
    wrap = literal(",") + s.channels + literal(",")
    opted = literal(",") + candidates.c.opt_outs + literal(",")
    token = literal("%,") + a.channel + literal(",%")
    allowed = or_(s.legally_required == True,  # noqa: E712 - SQL comparison
                  and_(not_(opted.like(token)), not_(opted.like("%,marketing,%"))))
    return exists().where(a.borrower_id == candidates.c.borrower_id, wrap.like(token), allowed)


def _plan_select(policy: ReminderPolicy, candidates: Any, now: datetime) -> Any:
    c, s = candidates.c, slots.c
    reachable = _reachable(candidates)
    status = case((reachable, "pending"), (s.legally_required == True, "unreachable"),  # noqa: E712
                  else_="skipped")
    reason = case((reachable, None), else_="no reachable channel at planning")
    language = case((c.language.in_(policy.languages), c.language),
                    else_=policy.default_language)
    step_key = (literal("rem:") + cast(c.loan_id, String) + literal(":")
                + cast(c.seq, String) + literal(":") + s.step_code)
    return select(
        step_key, c.loan_id, c.borrower_id, c.seq, s.step_code, literal(policy.policy_id),
        s.send_date, c.due_date, c.outstanding, c.currency, s.legally_required, s.template_id,
        language, s.channels, s.nominal_at, s.planned_at, s.expires_at, status, reason,
        s.planned_at, literal(0), literal(0), literal(0), literal(0), literal(False),
        literal(now), literal(now),
    ).select_from(candidates.join(slots, and_(
        s.time_zone == c.time_zone, s.quiet_hours == c.quiet_hours, s.due_date == c.due_date)))


_PLAN_COLUMNS = ("step_key", "loan_id", "borrower_id", "installment_seq", "step_code",
                 "policy_id", "send_date", "due_date", "amount_due_minor", "currency",
                 "legally_required", "template_id", "language", "channels", "nominal_at",
                 "planned_at", "expires_at", "status", "reason", "due_at", "channel_index",
                 "round", "tries", "failovers", "inflight", "created_at", "updated_at")
_REPLANNED = ("send_date", "due_date", "amount_due_minor", "currency", "legally_required",
              "template_id", "language", "channels", "nominal_at", "planned_at",
              "expires_at", "status", "reason", "updated_at")


def plan(
    connection: Connection, policy: ReminderPolicy, scope: PlanScope, *, not_before: datetime,
    default_tz: str, replace: bool,
) -> int:
    """Upsert reminders for ``scope``; returns rows inserted or re-planned.

    ``replace=False`` (close of business) never touches an existing step: planning twice
    creates nothing new. ``replace=True`` (booking, payment) re-times steps that have not
    been sent or claimed, so a rebuilt schedule replaces its reminders.
    """
    not_before = not_before.astimezone(UTC)
    candidates = _candidates(policy, scope, default_tz)
    combos = connection.execute(select(
        candidates.c.time_zone, candidates.c.quiet_hours, candidates.c.due_date).distinct()).all()
    rows = _slot_rows([tuple(r) for r in combos], policy, scope, not_before)
    _fill_slots(connection, rows)
    if not rows:
        return 0
    statement = _insert_for(connection)(reminders).from_select(
        list(_PLAN_COLUMNS), _plan_select(policy, candidates, not_before))
    if replace:
        statement = _replan(statement)
    else:
        statement = statement.on_conflict_do_nothing(index_elements=["step_key"])
    statement = statement.execution_options(preserve_rowcount=True)  # psycopg: else -1
    return int(connection.execute(statement).rowcount or 0)


def _replan(statement: Any) -> Any:
    r, excluded = reminders.c, statement.excluded
    values = {name: excluded[name] for name in _REPLANNED}
    values["due_at"] = case((r.tries == 0, excluded.due_at), else_=r.due_at)
    return statement.on_conflict_do_update(
        index_elements=["step_key"], set_=values,
        where=and_(r.status.in_(OPEN_STATUSES), r.inflight == False,  # noqa: E712
                   r.sent_at.is_(None)))


def _fill_slots(connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    slots.create(connection, checkfirst=True)
    connection.execute(slots.delete())
    if rows:
        connection.execute(insert(slots), list(rows))


def cancel_stale(connection: Connection, loan_ids: Sequence[int], now: datetime) -> int:
    """Cancel open steps of ``loan_ids`` whose instalment is settled or no longer scheduled."""
    r, i = reminders.c, t.installments.c
    same = and_(i.loan_id == r.loan_id, i.seq == r.installment_seq)
    live = exists().where(same, i.due_date == r.due_date, _outstanding() > 0)
    settled = exists().where(same, _outstanding() <= 0)
    reason = case((settled, "instalment settled"), else_="schedule changed")
    result = connection.execute(
        update(reminders)
        .where(r.loan_id.in_(loan_ids), r.status.in_(OPEN_STATUSES),
               r.inflight == False, not_(live))  # noqa: E712
        .values(status="cancelled", reason=reason, updated_at=now))
    return int(result.rowcount or 0)


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
                    select(i.loan_id, i.seq, i.due_date, _outstanding().label("outstanding"))
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
