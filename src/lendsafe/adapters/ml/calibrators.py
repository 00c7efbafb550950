"""Probability calibrators on a model's raw log-odds, stored as plain numbers.

- **Platt**: ``pd = sigmoid(a·margin + b)`` fitted by logistic regression.
- **Centred isotonic** (Oron & Flournoy's CIR): isotonic regression, with each constant block
  replaced by one point at the block's mean margin, joined by straight lines. Unlike a step
  function it stays strictly increasing inside the data range, so it does not create ties
  that would throw away ranking power (AUC).

:func:`choose_calibrator` fits both on out-of-fold margins, compares their Brier score by 2-fold
cross-fitting, and refits the winner on all of them.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from lendsafe.domain.scoring.calibration import Calibrator

FloatArray = npt.NDArray[np.float64]


def fit_platt(margin: FloatArray, y: npt.NDArray[np.int64]) -> Calibrator:
    """Platt scaling on raw margins."""
    model = LogisticRegression(C=1e6, max_iter=1000).fit(margin.reshape(-1, 1), y)
    return Calibrator("platt", (float(model.coef_[0, 0]), float(model.intercept_[0])), ())


def fit_isotonic(margin: FloatArray, y: npt.NDArray[np.int64]) -> Calibrator:
    """Centred isotonic regression on raw margins."""
    iso = IsotonicRegression(out_of_bounds="clip", increasing=True).fit(margin, y)
    fitted = iso.predict(margin)
    xs: list[float] = []
    ys: list[float] = []
    for value in np.unique(fitted):
        xs.append(float(margin[fitted == value].mean()))
        ys.append(float(value))
    if len(xs) == 1:
        return Calibrator("isotonic", (xs[0] - 1.0, xs[0] + 1.0), (ys[0], ys[0]))
    return Calibrator("isotonic", tuple(xs), tuple(ys))


FITTERS = {"platt": fit_platt, "isotonic": fit_isotonic}


def cross_fitted_brier(margin: FloatArray, y: npt.NDArray[np.int64], seed: int) -> dict[str, float]:
    """Brier score of each method, fitted on one half of the data and scored on the other."""
    folds = StratifiedKFold(2, shuffle=True, random_state=seed)
    result: dict[str, float] = {}
    for name, fit in FITTERS.items():
        errors = [
            float(np.mean((fit(margin[a], y[a])(margin[b]) - y[b]) ** 2))
            for a, b in folds.split(margin.reshape(-1, 1), y)
        ]
        result[name] = float(np.mean(errors))
    return result


def choose_calibrator(
    margin: FloatArray, y: npt.NDArray[np.int64], seed: int = 42
) -> tuple[Calibrator, dict[str, float]]:
    """The calibrator with the lower cross-fitted Brier score, refitted on all data."""
    briers = cross_fitted_brier(margin, y, seed)
    best = min(briers, key=lambda name: briers[name])
    return FITTERS[best](margin, y), briers
