"""SQL for planning the reminder outbox, set-based (dispatch: reminder_dispatch_store).

Planning is set-based: the few distinct (time zone, quiet hours, due date, step)
combinations are timed in Python with the pure quiet-hours rules (DST-safe), written to a
temporary *slot* table, and one ``INSERT ... SELECT ... ON CONFLICT`` joins slots with the
unsettled instalments - never a statement per loan. Claims take a lease: on PostgreSQL with
``FOR UPDATE SKIP LOCKED`` (many workers at once); on SQLite the ``BEGIN IMMEDIATE``
transaction makes each claim a single claimant.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from sqlalchemy import (
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
    bindparam,
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
    effective_quiet_hours,
    next_allowed_time,
    resolve_local,
)

NOTICE_KEY_PREFIX = "ntc:"  # event notices: told once, whatever the instalment they quote
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
# the loans a long list of ids names (relief chunks of 20,000): a temporary table joined by
# the planning statements instead of an IN list, which PostgreSQL estimates value by value
# (20-100 ms of planning per statement) and SQLite caps at 32,766 parameters
scope_loans = Table("reminder_scope_tmp", _slots_metadata,
                    Column("loan_id", BigInteger, primary_key=True, autoincrement=False),
                    prefixes=["TEMPORARY"])
SHORT_SCOPE = 64  # up to this many ids (a booking, a payment) stay an IN list
WIDE_WINDOW_DAYS = 31  # a longer planning window times the combinations actually present


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
    """Which steps to plan: some loans' steps, or steps sent on some dates.

    ``since``/``until`` bound the local send dates (inclusive) - the planning horizon: a
    change re-plans a loan's steps of the next few days only, and close of business plans
    each later day as it comes, so a schedule change never rewrites months of reminders.
    """

    loan_ids: tuple[int, ...] | None = None
    send_dates: tuple[date, ...] | None = None
    since: date | None = None
    until: date | None = None

    def admits(self, send_date: date) -> bool:
        """True when a step sent on ``send_date`` is inside this scope."""
        if self.send_dates is not None and send_date not in self.send_dates:
            return False
        return ((self.since is None or send_date >= self.since)
                and (self.until is None or send_date <= self.until))


def _owed(c: Any) -> Any:
    return (c.principal_due_minor + c.interest_due_minor + c.fee_due_minor
            - c.principal_paid_minor - c.interest_paid_minor - c.fee_paid_minor)


_OUTSTANDING = _owed(t.installments.c)


def outstanding_amount(columns: Any = None) -> Any:
    """What is still owed on an instalment (one shared SQL expression), of the
    ``installments`` table or of the alias whose ``columns`` are given."""
    return _OUTSTANDING if columns is None else _owed(columns)


def loans_in(connection: Connection, loan_ids: Sequence[int]) -> Callable[[Any], Any]:
    """A builder of SQL "``column`` is one of ``loan_ids``": a literal list when short, else
    the ids are written once to the connection's scope table (replacing what it held) and
    every clause built joins it."""
    if len(loan_ids) <= SHORT_SCOPE:
        return lambda column: column.in_(loan_ids)
    ids, root = tuple(loan_ids), connection.get_transaction()
    lo, hi = min(ids), max(ids)

    def among(column: Any) -> Any:
        # the id range too (implied by the list): the planner reads an index range of the
        # table, not all of it, and sizes the join by it
        return and_(column.between(lo, hi), column.in_(select(scope_loans.c.loan_id)))

    held = connection.info.pop("reminder_scope", None)  # what the table holds, if known
    nested = connection.in_nested_transaction()  # a savepoint may roll the table back
    if held is not None and held[0] is root and held[1] == ids and not nested:
        connection.info["reminder_scope"] = held  # re-planning, cancelling and notices of
        return among  # one chunk
    _fill_scope(connection, ids)
    if root is not None and not nested:
        connection.info["reminder_scope"] = (root, ids)
    return among


def _fill_scope(connection: Connection, loan_ids: tuple[int, ...]) -> None:
    scope_loans.create(connection, checkfirst=True)
    if connection.dialect.name == "postgresql":
        # TRUNCATE, not DELETE: autovacuum never visits temporary tables, and the planner
        # sizes an unanalysed table by its pages. JIT compilation (~0.1 s) costs more than it
        # saves on statements over one chunk of loans.
        connection.execute(text("TRUNCATE reminder_scope_tmp"))
        connection.execute(text("SET LOCAL jit = off"))
        connection.execute(text("INSERT INTO reminder_scope_tmp (loan_id) "
                                "SELECT unnest(CAST(:ids AS BIGINT[]))"), {"ids": list(loan_ids)})
    else:  # one statement, not one execution per id
        connection.execute(scope_loans.delete())
        connection.execute(text("INSERT INTO reminder_scope_tmp (loan_id) "
                                "SELECT value FROM json_each(:ids)"),
                           {"ids": json.dumps([int(i) for i in loan_ids])})


def _zones(connection: Connection, loan_filter: Any, default_tz: str) -> list[tuple[str, str]]:
    """The (time zone, quiet hours) pairs of the borrowers of the loans ``loan_filter``
    admits, from the contacts alone (the instalments are not read)."""
    loans, contacts = t.loans.c, reminder_contacts.c
    return [tuple(row) for row in connection.execute(select(
        func.coalesce(contacts.time_zone, default_tz),
        func.coalesce(contacts.quiet_hours, "")).distinct()
        .select_from(t.loans.outerjoin(reminder_contacts,
                                       contacts.borrower_id == loans.borrower_id))
        .where(loan_filter)).all()]


def _due_dates(policy: ReminderPolicy, scope: PlanScope) -> list[date] | None:
    """Every due date a step inside ``scope``'s window can belong to; None when the window
    is open or long (then the combinations present are read from the instalments)."""
    if scope.since is None or scope.until is None or scope.send_dates is not None:
        return None
    if (scope.until - scope.since).days > WIDE_WINDOW_DAYS:
        return None
    offsets = [s.offset_days for s in policy.steps] or [0]
    first = scope.since - timedelta(days=max(offsets))
    last = scope.until - timedelta(days=min(offsets))
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _candidates(policy: ReminderPolicy, scope: PlanScope, default_tz: str,
                loan_filter: Any = None, *, materialize: bool = False) -> Any:
    i, loans, contacts = t.installments.c, t.loans.c, reminder_contacts.c
    query = (
        select(
            i.loan_id, i.seq, i.due_date, outstanding_amount().label("outstanding"),
            loans.currency, loans.borrower_id,
            func.coalesce(contacts.time_zone, default_tz).label("time_zone"),
            func.coalesce(contacts.quiet_hours, "").label("quiet_hours"),
            func.coalesce(contacts.language, policy.default_language).label("language"),
            func.coalesce(contacts.opt_outs, "").label("opt_outs"),
        )
        .select_from(t.installments.join(t.loans, t.loans.c.id == i.loan_id)
                     .outerjoin(reminder_contacts,
                                contacts.borrower_id == loans.borrower_id))
        .where(loans.status == "active", outstanding_amount() > 0)
    )
    if loan_filter is not None:
        query = query.where(loan_filter)
    elif scope.loan_ids is not None:
        query = query.where(i.loan_id.in_(scope.loan_ids))
    if scope.send_dates is not None:
        dues = {d - timedelta(days=s.offset_days) for d in scope.send_dates for s in policy.steps}
        query = query.where(i.due_date.in_(sorted(dues)))
    offsets = [s.offset_days for s in policy.steps] or [0]
    if scope.until is not None:
        query = query.where(i.due_date <= scope.until - timedelta(days=min(offsets)))
    if scope.since is not None:
        query = query.where(i.due_date >= scope.since - timedelta(days=max(offsets)))
    if materialize:
        # read the few instalments first, then join the slots: PostgreSQL cannot estimate
        # the (zone, quiet hours) join and would otherwise probe the instalments once for
        # every loan and slot
        return query.cte("candidates").prefix_with("MATERIALIZED")
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
            if not scope.admits(send_date):
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
    return effective_quiet_hours(parse_quiet_hours(quiet_text), default, legal)


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


def _plan_select(policy: ReminderPolicy, candidates: Any, now: datetime, *,
                 joined: Any = None, step_key: Any = None) -> Any:
    c, s = candidates.c, slots.c
    language = case((c.language.in_(policy.languages), c.language),
                    else_=policy.default_language)
    if step_key is None:
        step_key = (literal("rem:") + cast(c.loan_id, String) + literal(":")
                    + cast(c.seq, String) + literal(":") + s.step_code)
    if joined is None:
        joined = and_(s.time_zone == c.time_zone, s.quiet_hours == c.quiet_hours,
                      s.due_date == c.due_date)
    # the reachability probe once per row: status and reason both read it, and written
    # twice it ran twice (two index probes per planned step); OFFSET 0 keeps the inner
    # query from being flattened back into the outer one (PostgreSQL and SQLite)
    inner = select(
        step_key.label("step_key"), c.loan_id, c.borrower_id, c.seq, s.step_code, s.send_date,
        c.due_date, c.outstanding, c.currency, s.legally_required, s.template_id,
        language.label("language"), s.channels, s.nominal_at, s.planned_at, s.expires_at,
        _reachable(candidates).label("reachable"),
    ).select_from(candidates.join(slots, joined)).offset(0).subquery("planned")
    p = inner.c
    status = case((p.reachable, "pending"), (p.legally_required == True, "unreachable"),  # noqa: E712
                  else_="skipped")
    reason = case((p.reachable, None), else_="no reachable channel at planning")
    return select(
        p.step_key, p.loan_id, p.borrower_id, p.seq, p.step_code, literal(policy.policy_id),
        p.send_date, p.due_date, p.outstanding, p.currency, p.legally_required, p.template_id,
        p.language, p.channels, p.nominal_at, p.planned_at, p.expires_at, status, reason,
        p.planned_at, literal(0), literal(0), literal(0), literal(0), literal(False),
        literal(now), literal(now),
    ).where(p.loan_id.is_not(None))  # SQLite's upsert after INSERT ... SELECT needs a WHERE


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

    ``replace=False`` (close of business) never touches a live step: planning twice
    creates nothing new. ``replace=True`` (booking, payment) re-times steps that have not
    been sent or claimed, so a rebuilt schedule replaces its reminders. Both revive a step
    that was cancelled because the schedule changed (never sent) when its instalment is due
    again on the planned day - the same step key, so the dedup key stays stable.
    """
    not_before = not_before.astimezone(UTC)
    # many loans (a relief chunk): the scope table, a materialised candidate set and slots
    # from the borrowers' zones; a few (a booking, a payment): the plain statement
    wide = scope.loan_ids is not None and len(scope.loan_ids) > SHORT_SCOPE
    among = loans_in(connection, scope.loan_ids or ()) if wide else None
    candidates = _candidates(policy, scope, default_tz,
                             None if among is None else among(t.installments.c.loan_id),
                             materialize=wide)
    dues = _due_dates(policy, scope)
    if among is not None and dues is not None:
        # a short window of one set of loans: time every pair of their borrowers' zones with
        # every date in the window (a superset; the join keeps what exists)
        zones = _zones(connection, among(t.loans.c.id), default_tz)
        combos = [(zone, quiet, due) for zone, quiet in zones for due in dues]
    else:
        combos = [tuple(r) for r in connection.execute(select(
            candidates.c.time_zone, candidates.c.quiet_hours,
            candidates.c.due_date).distinct()).all()]
    rows = _slot_rows(combos, policy, scope, not_before)
    _fill_slots(connection, rows)
    if not rows:
        return 0
    statement = _insert_for(connection)(reminders).from_select(
        list(_PLAN_COLUMNS), _plan_select(policy, candidates, not_before))
    statement = _replan(statement, replace)
    statement = statement.execution_options(preserve_rowcount=True)  # psycopg: else -1
    return int(connection.execute(statement).rowcount or 0)


def _replan(statement: Any, replace: bool) -> Any:
    r, excluded = reminders.c, statement.excluded
    values = {name: excluded[name] for name in _REPLANNED}
    revivable = and_(r.status == "cancelled", r.reason == "schedule changed")
    # a revived step starts afresh (its old tries were for another due date); an open step
    # being retried keeps its back-off time
    values["due_at"] = case((or_(r.tries == 0, revivable), excluded.due_at), else_=r.due_at)
    for counter in ("channel_index", "round", "tries"):
        values[counter] = case((revivable, 0), else_=r[counter])
    which = or_(r.status.in_(OPEN_STATUSES), revivable) if replace else revivable
    return statement.on_conflict_do_update(
        index_elements=["step_key"], set_=values,
        where=and_(which, r.inflight == False, r.sent_at.is_(None)))  # noqa: E712


def _fill_slots(connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    slots.create(connection, checkfirst=True)
    connection.execute(slots.delete())
    if rows:
        connection.execute(insert(slots), list(rows))


def cancel_stale(connection: Connection, loan_ids: Sequence[int], now: datetime) -> int:
    """Cancel open steps of ``loan_ids`` whose instalment is settled or no longer scheduled."""
    if len(loan_ids) <= SHORT_SCOPE:  # a booking, a payment: one statement built once
        result = connection.execute(_CANCEL_SHORT, {"ids": list(loan_ids), "now": now})
    else:  # a relief chunk: the scope table, and the instalments of the id range only
        span = (min(loan_ids), max(loan_ids))
        result = connection.execute(_cancel_statement(loans_in(connection, loan_ids), span),
                                    {"now": now})
    return int(result.rowcount or 0)


def _cancel_statement(among: Callable[[Any], Any], span: tuple[int, int] | None) -> Any:
    r, i = reminders.c, t.installments.c
    same = and_(i.loan_id == r.loan_id, i.seq == r.installment_seq)
    if span is not None:
        same = and_(same, i.loan_id.between(*span))
    live = exists().where(same, i.due_date == r.due_date, outstanding_amount() > 0)
    settled = exists().where(same, outstanding_amount() <= 0)
    reason = case((settled, "instalment settled"), else_="schedule changed")
    return (update(reminders)
            .where(among(r.loan_id), r.status.in_(OPEN_STATUSES),
                   r.inflight == False, not_(live),  # noqa: E712
                   not_(r.step_key.like(NOTICE_KEY_PREFIX + "%")))  # an event notice still goes
            .values(status="cancelled", reason=reason, updated_at=bindparam("now")))


_CANCEL_SHORT = _cancel_statement(lambda column: column.in_(bindparam("ids", expanding=True)),
                                  None)


def cancel_charged_off(connection: Connection, day: date, now: datetime) -> int:
    """Cancel the open steps of loans charged off at the close of ``day``: reminders are
    for active loans; a charged-off loan goes to collections."""
    r, loans = reminders.c, t.loans.c
    gone = select(loans.id).where(loans.charged_off_on == day, loans.status == "charged_off")
    result = connection.execute(
        update(reminders)
        .where(r.loan_id.in_(gone), r.status.in_(OPEN_STATUSES),
               r.inflight == False)  # noqa: E712
        .values(status="cancelled", reason="loan charged off", updated_at=now))
    return int(result.rowcount or 0)


# --------------------------------------------------------------------------- event notices


def plan_notices(
    connection: Connection, policy: ReminderPolicy, notice: ReminderStep, reference: str,
    loan_ids: Sequence[int], *, now: datetime, default_tz: str,
) -> int:
    """One ``notice`` per active loan of ``loan_ids``, sent as soon as quiet hours allow.

    The row names the loan's next unsettled instalment (what the message quotes, read again
    at send time); its step key ``ntc:{reference}:{loan}`` makes planning twice a no-op.
    """
    now = now.astimezone(UTC)
    among = loans_in(connection, loan_ids)
    candidates = _notice_candidates(policy, loan_ids, among, default_tz)
    rows = [_notice_slot(zone, quiet, policy, notice, now)
            for zone, quiet in _zones(connection, among(t.loans.c.id), default_tz)]
    _fill_slots(connection, rows)
    if not rows:
        return 0
    c, s = candidates.c, slots.c
    plan = _plan_select(policy, candidates, now, joined=and_(
        s.time_zone == c.time_zone, s.quiet_hours == c.quiet_hours),
        step_key=literal(f"{NOTICE_KEY_PREFIX}{reference}:") + cast(c.loan_id, String))
    statement = (_insert_for(connection)(reminders).from_select(list(_PLAN_COLUMNS), plan)
                 .on_conflict_do_nothing(index_elements=["step_key"])
                 .execution_options(preserve_rowcount=True))
    return int(connection.execute(statement).rowcount or 0)


def _notice_candidates(policy: ReminderPolicy, loan_ids: Sequence[int],
                       among: Callable[[Any], Any], default_tz: str) -> Any:
    i, u = t.installments.c, t.installments.alias("unsettled").c
    first = (select(func.min(u.seq)).where(u.loan_id == t.loans.c.id, outstanding_amount(u) > 0)
             .scalar_subquery())  # the loan's first unsettled instalment, looked up per loan
    whole = _candidates(policy, PlanScope(loan_ids=tuple(loan_ids)), default_tz,
                        among(i.loan_id)).element  # (a wide scope carries its id range)
    return whole.where(i.seq == first).subquery("candidates")


def _notice_slot(zone: str, quiet_text: str, policy: ReminderPolicy, notice: ReminderStep,
                 now: datetime) -> dict[str, Any]:
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(zone)
    quiet = _quiet(quiet_text, policy.default_quiet_hours, policy.legal_quiet_hours)
    planned = _next_allowed(now, tz, quiet)
    slot = _slot(zone, quiet_text, planned.astimezone(tz).date(), notice,
                 planned.astimezone(tz).date(), now, planned)
    slot["expires_at"] = planned + notice.expiry  # quiet hours never eat the notice's time
    return slot
