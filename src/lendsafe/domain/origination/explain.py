"""Adverse reasons of one scored application, without numpy (the single-application path).

Same definition as :func:`lendsafe.domain.scoring.reasons.scorecard_reasons`: a
characteristic's lost points are its maximum points minus the points it gave; reasons are the
characteristics with lost points, largest first.
"""

from __future__ import annotations

from lendsafe.domain.scoring.reasons import ReasonCode
from lendsafe.domain.scoring.scorecard import Scorecard, ScoredApplication


def scored_reasons(card: Scorecard, scored: ScoredApplication, top: int = 4) -> list[ReasonCode]:
    """Ranked adverse reasons of ``scored`` (from :meth:`Scorecard.score_one`)."""
    losses = []
    for position, characteristic in enumerate(card.characteristics):
        points = scored.points[characteristic.name]
        lost = characteristic.max_points - points
        if lost > 0:
            losses.append((-lost, position, ReasonCode(
                characteristic.name, scored.bins[characteristic.name], points,
                characteristic.max_points)))
    losses.sort(key=lambda item: (item[0], item[1]))
    return [reason for _, _, reason in losses[:top]]
