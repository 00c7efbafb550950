"""Maker-checker: a pending sensitive action and the rules for deciding it.

A pending action records what will change (kind, target, payload), who asked (maker) and
why. Only another user holding the kind's approval permission may approve or reject it, and
only while it is pending. Applying it is the registered handler's job (services layer).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lendsafe.domain.problems import Problem

__all__ = ["ActionStatus", "PendingAction", "decision_problems"]


class ActionStatus(enum.StrEnum):
    """Where a sensitive action stands."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


@dataclass(frozen=True)
class PendingAction:
    """A sensitive change waiting for a second person."""

    id: int
    kind: str
    target: str
    payload: Mapping[str, Any]
    maker: str
    reason: str
    status: ActionStatus = ActionStatus.PENDING
    checker: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


def decision_problems(action: PendingAction, checker: str, checker_permissions: frozenset[str],
                      required_permission: str) -> list[Problem]:
    """Why ``checker`` may not decide ``action`` (empty when they may)."""
    problems = []
    if action.status is not ActionStatus.PENDING:
        problems.append(Problem("control.not_pending",
                                f"action {action.id} is already {action.status.value}"))
    if checker == action.maker:
        problems.append(Problem("control.self_approval",
                                "the maker of a change can never approve or reject it"))
    if required_permission not in checker_permissions:
        problems.append(Problem("control.permission",
                                f"deciding a {action.kind!r} needs {required_permission!r}"))
    return problems
