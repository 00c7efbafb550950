"""Reason codes: why an application scored as it did.

*Scorecard*: each characteristic's **lost points** are its maximum points minus the points it
gave; reasons are the characteristics ranked by lost points (largest first, zero losses left
out). By construction, giving the top characteristic its maximum points raises the score by
exactly its lost points.

*Contribution models* (e.g. a gradient-boosted model explained with TreeSHAP): each feature has a
contribution to the log-odds of *bad*; the adverse reasons are the positive contributions, ranked.
Removing a reason's contribution lowers the log-odds of bad by exactly that amount.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lendsafe.domain.scoring.scorecard import IntArray, Scorecard

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ReasonCode:
    """One adverse reason of a scorecard decision."""

    characteristic: str
    bin_label: str
    points: float
    max_points: float

    @property
    def lost_points(self) -> float:
        """Points lost against the characteristic's maximum."""
        return self.max_points - self.points


@dataclass(frozen=True)
class ContributionReason:
    """One adverse reason of a contribution-explained model (log-odds of bad)."""

    feature: str
    contribution: float


def lost_points(card: Scorecard, bins: IntArray) -> FloatArray:
    """Lost points per application and characteristic, shape ``(n, m)``."""
    return np.asarray(card.max_points()[None, :] - card.points_matrix(bins))


def scorecard_reasons(card: Scorecard, bins_row: IntArray, top: int = 4) -> list[ReasonCode]:
    """Ranked reason codes of one application given its row of the bin matrix."""
    row = np.asarray(bins_row, dtype=np.int64).reshape(1, -1)
    points = card.points_matrix(row)[0]
    maxima = card.max_points()
    order = np.argsort(-(maxima - points), kind="stable")
    reasons: list[ReasonCode] = []
    for j in order[:top]:
        if maxima[j] - points[j] <= 0:
            break
        c = card.characteristics[int(j)]
        reasons.append(ReasonCode(c.name, c.label(int(row[0, j])), points[j], maxima[j]))
    return reasons


def top_reason_indices(losses: FloatArray, top: int = 4) -> IntArray:
    """Column indices of the ``top`` largest losses per row (batch), largest first."""
    k = min(top, losses.shape[1])
    part = np.argpartition(-losses, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(losses, part, axis=1), axis=1, kind="stable")
    return np.asarray(np.take_along_axis(part, order, axis=1), dtype=np.int64)


def contribution_reasons(
    features: Sequence[str], contributions: FloatArray, top: int = 4
) -> list[ContributionReason]:
    """Positive (adverse) contributions of one application, largest first."""
    values = np.asarray(contributions, dtype=np.float64)
    if values.shape != (len(features),):
        raise ValueError("one contribution per feature expected")
    order = np.argsort(-values, kind="stable")
    return [
        ContributionReason(features[int(j)], float(values[j])) for j in order[:top] if values[j] > 0
    ]
