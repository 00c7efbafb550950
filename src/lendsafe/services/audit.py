"""Audit records: who did what, to what, when, with the state before and after and why.

Every state change writes one record in the transaction that makes the change (the
listener :func:`AuditLog.on_change` for lending use cases; :meth:`AuditLog.record` for the
control services). Records are append-only and sealed into the verifiable log with the
journal (see ``lendsafe.services.ledger``). :func:`report` is the internal auditor's
periodic report.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select

from lendsafe.adapters.db import control_tables as ct
from lendsafe.adapters.db import ledger_tables as lt
from lendsafe.domain.calendar import day_number
from lendsafe.domain.ledger.canonical import canonical_json

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def micros(moment: datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime."""
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def from_micros(value: int) -> datetime:
    """Inverse of :func:`micros` (UTC)."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=value)


def _event_document(event: object) -> dict[str, Any]:
    fields = dict(vars(event)) if hasattr(event, "__dict__") else {}
    return {"event": type(event).__name__,
            **{k: (v.isoformat() if isinstance(v, date) else v) for k, v in fields.items()}}


@dataclass
class AuditLog:
    """Writes audit records on a caller's connection (same transaction as the change)."""

    clock: Clock = _utc_now

    def record(self, connection: Connection, *, actor: str, action: str,
               target: str | None = None, before: Any = None, after: Any = None,
               reason: str | None = None, business_date: date | None = None) -> int:
        """Insert one audit record; ``before``/``after`` are stored as canonical JSON."""
        values = {
            "at_micros": micros(self.clock()),
            "business_day": None if business_date is None else day_number(business_date),
            "actor": actor[:128], "action": action[:64],
            "target": None if target is None else target[:128],
            "before": None if before is None else canonical_json(before),
            "after": None if after is None else canonical_json(after),
            "reason": reason,
        }
        result = connection.execute(_INSERT_RECORD, values)
        return int(result.inserted_primary_key[0])  # type: ignore[index]

    def on_change(self, change: Any) -> None:
        """Listener for lending changes: one record per change with its events as ``after``."""
        after = {"events": [_event_document(e) for e in change.events]}
        self.record(change.connection, actor=change.actor, action=change.action,
                    target=change.target, after=after, business_date=change.business_date)


_INSERT_RECORD = insert(ct.audit_records)  # built once: every change writes one record


def _bounds(start: date, end: date) -> tuple[int, int]:
    lo = micros(datetime(start.year, start.month, start.day, tzinfo=UTC))
    hi = micros(datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1))
    return lo, hi


def records(engine: Engine, start: date, end: date, action_prefix: str | None = None
            ) -> list[dict[str, Any]]:
    """Audit records with ``start <= time < end + 1 day`` (UTC), oldest first."""
    lo, hi = _bounds(start, end)
    query = select(ct.audit_records).where(ct.audit_records.c.at_micros >= lo,
                                           ct.audit_records.c.at_micros < hi)
    if action_prefix:
        query = query.where(ct.audit_records.c.action.startswith(action_prefix))
    with engine.connect() as connection:
        rows = connection.execute(query.order_by(ct.audit_records.c.id)).all()
    return [_record_document(r) for r in rows]


def _record_document(row: Any) -> dict[str, Any]:
    return {
        "id": row.id, "at": from_micros(row.at_micros).isoformat(), "actor": row.actor,
        "action": row.action, "target": row.target,
        "before": None if row.before is None else json.loads(row.before),
        "after": None if row.after is None else json.loads(row.after), "reason": row.reason,
    }


def report(engine: Engine, start: date, end: date,
           conflicts: Callable[[], list[dict[str, Any]]] | None = None) -> dict[str, Any]:
    """The internal auditor's report for ``[start, end]``; see ``docs/concepts/control.md``."""
    every = records(engine, start, end)

    def having(*prefixes: str) -> list[dict[str, Any]]:
        return [r for r in every if r["action"].startswith(prefixes)]

    with engine.connect() as connection:
        waiting = connection.execute(select(ct.pending_actions).where(
            ct.pending_actions.c.status == "pending").order_by(ct.pending_actions.c.id)).all()
        lo, hi = _bounds(start, end)
        verifications = connection.execute(select(lt.ledger_verifications).where(
            lt.ledger_verifications.c.at_micros >= lo, lt.ledger_verifications.c.at_micros < hi,
        ).order_by(lt.ledger_verifications.c.id)).all()
        by_action: dict[str, int] = {str(a): int(n) for a, n in connection.execute(select(
            ct.audit_records.c.action, func.count()).group_by(ct.audit_records.c.action))}
    return {
        "from": start.isoformat(), "to": end.isoformat(), "records": len(every),
        "overrides": having("override.", "control.applied"),
        "maker_checker": {
            "decisions": having("control.approved", "control.rejected"),
            "proposed": having("control.proposed"),
            "waiting": [{"id": w.id, "kind": w.kind, "target": w.target, "maker": w.maker,
                         "reason": w.reason, "since": from_micros(w.created_micros).isoformat()}
                        for w in waiting],
        },
        "segregation_conflicts": (conflicts() if conflicts else []) + having("control.sod"),
        "failed_logins": having("auth.login_failed", "auth.otp_failed", "auth.locked"),
        "pii_access": having("pii.read"),
        "ledger": {
            "unexpected_rows": having("ledger.unexpected"),
            "verifications": [{"at": from_micros(v.at_micros).isoformat(), "ok": bool(v.ok),
                               "entries": v.entries, "report": json.loads(v.report)}
                              for v in verifications],
        },
        "all_time_counts_by_action": {k: int(v) for k, v in sorted(by_action.items())},
    }
