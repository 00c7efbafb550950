"""Model promotion under maker-checker, and monitoring of incoming applications.

*Promotion*: putting a model in the ``champion`` or ``challenger`` role is the sensitive action
``model.promote`` (permission ``approve.model.promote``): a maker proposes it through
:meth:`lendsafe.services.control.Security.propose`, a second person approves, and the apply
handler below changes ``model_roles`` in the approval's transaction.

*Monitoring*: the decision log keeps each model's score and the model inputs of every
application; :func:`monitor` compares them with the training sample — score PSI over the
model's training score bands, and (for scorecards) the PSI of every characteristic's bins —
against the thresholds 0.1 (monitor) and 0.25 (unstable).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time
from typing import Any

import numpy as np
from sqlalchemy import Connection, or_, select

from lendsafe.adapters.db import decision_tables as dt
from lendsafe.domain.control.approvals import PendingAction
from lendsafe.domain.problems import Problem, Refused
from lendsafe.domain.scoring.stability import PSI_MONITOR, PSI_UNSTABLE
from lendsafe.services.decision_models import ROLES, ModelBook

PROMOTE = "model.promote"
PROMOTE_PERMISSION = "approve.model.promote"


def promotion_payload(book: ModelBook, model_id: str, role: str) -> dict[str, str]:
    """The payload of a promotion proposal (the model id resolved, the role checked)."""
    if role not in ROLES:
        raise Refused([Problem("model.role", f"role must be one of {', '.join(ROLES)}",
                               field="role")])
    try:
        full = book.registry.resolve(model_id)
    except LookupError as error:
        raise Refused([Problem("model.unknown", str(error), field="model_id")]) from None
    return {"model_id": full, "role": role}


def promotion_handlers(book: ModelBook) -> tuple[Any, Any]:
    """Apply and describe handlers of ``model.promote`` for the control service."""

    def apply(connection: Connection, action: PendingAction, checker: str) -> dict[str, Any]:
        role, model_id = str(action.payload["role"]), str(action.payload["model_id"])
        before = book.roles(connection).get(role)
        book.assign(connection, role, model_id, f"{action.maker}+{checker}",
                    datetime.now(UTC))
        return {"role": role, "before": before, "after": model_id}

    def describe(connection: Connection, action: PendingAction) -> dict[str, Any]:
        role = str(action.payload["role"])
        return {"role": role, "before": book.roles(connection).get(role),
                "after": action.payload["model_id"]}

    return apply, describe


def monitor(engine: Any, book: ModelBook, model_id: str, since: date | None) -> dict[str, Any]:
    """Score and characteristic stability of a model on the logged applications."""
    import pandas as pd

    from lendsafe.adapters.ml.evaluation import stability

    full = book.registry.resolve(model_id)
    model = book.load(full)
    log = dt.decision_log.c
    query = select(log.champion_version, log.champion_score, log.challenger_version,
                   log.challenger_score, log.characteristics).where(
        or_(log.champion_version == full, log.challenger_version == full),
        log.decided_by.in_(("champion", "challenger")))
    if since is not None:
        query = query.where(log.decided_at >= datetime.combine(since, time.min, UTC))
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    report: dict[str, Any] = {"model_id": full, "kind": model.kind, "applications": len(rows),
                              "since": since.isoformat() if since else None,
                              "thresholds": {"monitor": PSI_MONITOR, "unstable": PSI_UNSTABLE}}
    if not rows:
        return report | {"score_psi": None, "status": "no data", "characteristics": []}
    scores = np.asarray([r.champion_score if r.champion_version == full else r.challenger_score
                         for r in rows], dtype=np.float64)
    frame = pd.DataFrame([json.loads(r.characteristics) for r in rows])
    for name in model.schema.names:
        if name not in frame.columns:
            frame[name] = None
    result = stability(model, frame, scores)
    return report | {"score_psi": result["score_psi"], "status": result["status"],
                     "characteristics": result.get("characteristics", []),
                     "note": None if model.scorecard is not None else
                     "characteristic stability needs the scorecard's bins; GBM: score PSI only"}
