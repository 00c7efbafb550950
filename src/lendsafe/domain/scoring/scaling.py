"""Points scaling: turning odds into scores.

The industry convention is ``score = offset + factor * ln(odds)`` where ``odds`` are the
*good:bad* odds. Three numbers fix the line:

- ``pdo`` — points to double the odds, so ``factor = pdo / ln 2``;
- ``base_odds`` — the good:bad odds that sit at ``base_points``;
- ``base_points`` — the score given to ``base_odds``,
  so ``offset = base_points - factor * ln(base_odds)``.

A model that predicts the log-odds of *bad* (``logit = ln(p_bad / p_good)``) therefore maps to
``score = offset - factor * logit``: higher scores are safer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class PointsScaling:
    """Scaling parameters of a scorecard (defaults: 20 points double the odds, 50:1 at 600)."""

    pdo: float = 20.0
    base_odds: float = 50.0
    base_points: float = 600.0

    def __post_init__(self) -> None:
        if self.pdo <= 0 or self.base_odds <= 0:
            raise ValueError("pdo and base_odds must be positive")

    @property
    def factor(self) -> float:
        """Points per unit of ln(odds): ``pdo / ln 2``."""
        return self.pdo / math.log(2.0)

    @property
    def offset(self) -> float:
        """Score at good:bad odds of 1:1: ``base_points - factor * ln(base_odds)``."""
        return self.base_points - self.factor * math.log(self.base_odds)

    def score_from_odds(self, good_bad_odds: float) -> float:
        """Score for the given good:bad odds."""
        return self.offset + self.factor * math.log(good_bad_odds)

    def score_from_bad_logit(self, logit: FloatArray) -> FloatArray:
        """Scores for log-odds of *bad* (vectorised)."""
        return np.asarray(self.offset - self.factor * logit, dtype=np.float64)

    def bad_logit_from_score(self, score: FloatArray) -> FloatArray:
        """Inverse of :meth:`score_from_bad_logit`."""
        return np.asarray((self.offset - score) / self.factor, dtype=np.float64)

    def pd_from_score(self, score: FloatArray) -> FloatArray:
        """Probability of default implied by a score."""
        logit = self.bad_logit_from_score(np.asarray(score, dtype=np.float64))
        return np.asarray(1.0 / (1.0 + np.exp(-logit)), dtype=np.float64)

    def score_from_pd(self, pd: FloatArray, eps: float = 1e-9) -> FloatArray:
        """Score implied by a probability of default (clipped away from 0 and 1)."""
        p = np.clip(np.asarray(pd, dtype=np.float64), eps, 1.0 - eps)
        return self.score_from_bad_logit(np.log(p / (1.0 - p)))

    def to_dict(self) -> dict[str, float]:
        """Plain-dict form for artifacts."""
        return {"pdo": self.pdo, "base_odds": self.base_odds, "base_points": self.base_points}

    @classmethod
    def from_dict(cls, data: dict[str, float]) -> PointsScaling:
        """Inverse of :meth:`to_dict`."""
        return cls(float(data["pdo"]), float(data["base_odds"]), float(data["base_points"]))
