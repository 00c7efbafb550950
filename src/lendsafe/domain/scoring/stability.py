"""Population stability: PSI and characteristic stability.

``PSI = Σ (actual% - expected%) · ln(actual% / expected%)`` over bins. Shares of zero are replaced
by ``eps`` so that a bin that appears or empties counts as a (large) shift rather than an error.
Thresholds: below 0.1 *stable*, 0.1 to below 0.25 *monitor*, 0.25 and above *unstable*.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lendsafe.domain.scoring.scorecard import Characteristic, IntArray, Scorecard

FloatArray = npt.NDArray[np.float64]

PSI_MONITOR = 0.1
PSI_UNSTABLE = 0.25


def psi(expected: npt.ArrayLike, actual: npt.ArrayLike, eps: float = 1e-4) -> float:
    """Population stability index of two distributions given as counts or shares."""
    e = _shares(expected, eps)
    a = _shares(actual, eps)
    if e.shape != a.shape:
        raise ValueError("expected and actual need the same bins")
    return float(np.sum((a - e) * np.log(a / e)))


def _shares(counts: npt.ArrayLike, eps: float) -> FloatArray:
    values = np.asarray(counts, dtype=np.float64)
    if values.ndim != 1 or values.size == 0 or np.any(values < 0) or values.sum() <= 0:
        raise ValueError("a distribution needs non-negative values with a positive total")
    return np.asarray(np.maximum(values / values.sum(), eps), dtype=np.float64)


def stability_status(value: float) -> str:
    """``stable`` (< 0.1), ``monitor`` (< 0.25) or ``unstable``."""
    if value < PSI_MONITOR:
        return "stable"
    return "monitor" if value < PSI_UNSTABLE else "unstable"


@dataclass(frozen=True)
class CharacteristicStability:
    """PSI of one characteristic between training and a new population."""

    characteristic: str
    psi: float
    status: str
    expected_share: tuple[float, ...]
    actual_share: tuple[float, ...]


def characteristic_stability(card: Scorecard, bins: IntArray) -> list[CharacteristicStability]:
    """PSI of every characteristic, training bin counts against a :meth:`Scorecard.bin_matrix`."""
    return [_one(c, bins[:, j]) for j, c in enumerate(card.characteristics)]


def _one(characteristic: Characteristic, column: IntArray) -> CharacteristicStability:
    expected = np.asarray(
        [b.count for b in characteristic.bins] + [characteristic.missing.count, 0], dtype=np.float64
    )
    actual = np.bincount(column, minlength=expected.size).astype(np.float64)
    value = psi(expected, actual)
    return CharacteristicStability(
        characteristic.name,
        value,
        stability_status(value),
        tuple(float(x) for x in expected / expected.sum()),
        tuple(float(x) for x in actual / max(actual.sum(), 1.0)),
    )


def score_psi(expected_scores: FloatArray, actual_scores: FloatArray, edges: FloatArray) -> float:
    """PSI of two score samples over the given band edges."""
    cut = np.asarray(edges, dtype=np.float64)
    e = np.bincount(np.searchsorted(cut, expected_scores, side="right"), minlength=cut.size + 1)
    a = np.bincount(np.searchsorted(cut, actual_scores, side="right"), minlength=cut.size + 1)
    return psi(e, a)
