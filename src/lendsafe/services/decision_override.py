"""Decision and limit overrides: a sensitive action under maker-checker.

A maker proposes (``POST /control/actions`` with kind ``decision.override``, target
``application:ID``, payload ``{"decision": "approve"|"decline", "limit_minor": N}``); a
checker holding ``approve.decision.override`` approves it; approval appends a new row to the
decision log (the model's own decision stays beside it, never rewritten), closes an open
referral of the application, and is audited by the control services in the same
transaction. The override may not lend more than the applicant asked for.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from lendsafe.adapters.db import decision_tables as dt
from lendsafe.domain.problems import Problem, Refused

KIND = "decision.override"
PERMISSION = "approve.decision.override"
DECISIONS = ("approve", "decline")


def _latest(connection: Connection, application_id: str) -> Any:
    log = dt.decision_log.c
    row = connection.execute(select(dt.decision_log).where(
        log.application_id == application_id).order_by(log.id.desc()).limit(1)).first()
    if row is None:
        raise Refused([Problem("decision.not_found", f"application {application_id!r} has no "
                               "decision to override", field="target")])
    return row


def _proposed(connection: Connection, action: Any) -> tuple[str, Any, str, int]:
    """(application id, its latest decision, the new decision, the new limit) - checked."""
    application_id = str(action.target).removeprefix("application:")
    latest = _latest(connection, application_id)
    requested = connection.execute(select(dt.applications.c.amount_minor).where(
        dt.applications.c.id == application_id)).scalar_one()
    decision, limit = action.payload.get("decision"), action.payload.get("limit_minor", 0)
    problems = []
    if decision not in DECISIONS:
        problems.append(Problem("decision.override_decision", f"payload.decision must be one "
                                f"of {DECISIONS}, not {decision!r}", field="payload.decision"))
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        problems.append(Problem("decision.override_limit", "payload.limit_minor must be a "
                                "whole number of minor units >= 0", field="payload.limit_minor"))
    elif decision == "approve" and not 0 < limit <= int(requested):
        problems.append(Problem(
            "decision.override_limit", f"an approval needs 0 < limit_minor <= the amount "
            f"applied for ({requested})", field="payload.limit_minor",
            figures={"limit_minor": str(limit), "requested_minor": str(requested)}))
    if problems:
        raise Refused(problems)
    return application_id, latest, str(decision), int(limit) if decision == "approve" else 0


def describe(connection: Connection, action: Any) -> dict[str, Any]:
    """What approving the override changes."""
    application_id, latest, decision, limit = _proposed(connection, action)
    return {"application_id": application_id,
            "before": {"decision": latest.decision, "limit_minor": int(latest.limit_minor),
                       "decided_by": latest.decided_by},
            "after": {"decision": decision, "limit_minor": limit, "decided_by": "override"}}


def handlers(clock: Callable[[], datetime]) -> tuple[Any, Any]:
    """(apply, describe) for :meth:`Security.register_sensitive_action`."""
    def applied(connection: Connection, action: Any, checker: str) -> dict[str, Any]:
        return apply(connection, action, checker, clock())

    return applied, describe


def apply(connection: Connection, action: Any, checker: str, now: datetime) -> dict[str, Any]:
    """Append the overriding decision (decided ``now``); close an open referral."""
    application_id, latest, decision, limit = _proposed(connection, action)
    reasons = [{"code": "decision.override",
                "text_en": f"decision set to {decision} by {action.maker}, approved by "
                           f"{checker}: {action.reason}",
                "text_zh": f"经{action.maker}提出、{checker}批准，人工调整为"
                           f"{'批准' if decision == 'approve' else '拒绝'}：{action.reason}"}]
    row = dict(latest._mapping)
    row.pop("id")
    row.update(decision=decision, limit_minor=limit, decided_by="override", decided_at=now,
               reasons=json.dumps(reasons + json.loads(latest.reasons), ensure_ascii=False))
    connection.execute(insert(dt.decision_log).values(**row))
    referral = dt.referrals.c
    connection.execute(update(dt.referrals).where(
        referral.application_id == application_id, referral.status == "open").values(
        status="approved" if decision == "approve" else "declined",
        decided_by=f"override:{action.maker}+{checker}", decided_at=now, note=action.reason))
    return {"application_id": application_id, "decision": decision, "limit_minor": limit,
            "overrides": {"decision": latest.decision, "limit_minor": int(latest.limit_minor)}}
