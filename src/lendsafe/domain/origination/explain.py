"""Adverse reasons of one scored application, without numpy (the single-application path).

Same definition as :func:`lendsafe.domain.scoring.reasons.scorecard_reasons`: a
characteristic's lost points are its maximum points minus the points it gave; reasons are the
characteristics with lost points, largest first.
"""

from __future__ import annotations

from lendsafe.domain.scoring.reasons import ReasonCode
from lendsafe.domain.scoring.scorecard import Scorecard, ScoredApplication

# The maximum points of each characteristic, per scorecard (by identity; the card is kept so
# that its id is not reused): a scorecard is immutable, and the maxima are otherwise worked
# out over every bin for every application.
_MAXIMA: dict[int, tuple[Scorecard, tuple[tuple[str, float], ...]]] = {}
MAXIMA_CACHE_SIZE = 64


def scored_reasons(card: Scorecard, scored: ScoredApplication, top: int = 4) -> list[ReasonCode]:
    """Ranked adverse reasons of ``scored`` (from :meth:`Scorecard.score_one`)."""
    losses = []
    for position, (name, most) in enumerate(_maxima(card)):
        points = scored.points[name]
        lost = most - points
        if lost > 0:
            losses.append((-lost, position, ReasonCode(name, scored.bins[name], points, most)))
    losses.sort(key=lambda item: (item[0], item[1]))
    return [reason for _, _, reason in losses[:top]]


def _maxima(card: Scorecard) -> tuple[tuple[str, float], ...]:
    found = _MAXIMA.get(id(card))
    if found is not None and found[0] is card:
        return found[1]
    maxima = tuple((c.name, c.max_points) for c in card.characteristics)
    if len(_MAXIMA) >= MAXIMA_CACHE_SIZE:
        _MAXIMA.clear()
    _MAXIMA[id(card)] = (card, maxima)
    return maxima
