"""Discrimination and accuracy metrics on numpy arrays: AUC, Gini, KS, Brier.

``y`` is 1 for bad and 0 for good; ``risk`` is any number that grows with risk (a PD, a
log-odds, or minus a score).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def _check(y: npt.ArrayLike, risk: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    labels = np.asarray(y, dtype=np.float64)
    values = np.asarray(risk, dtype=np.float64)
    if labels.shape != values.shape or labels.ndim != 1:
        raise ValueError("y and risk must be 1-d arrays of one length")
    if not np.all((labels == 0) | (labels == 1)):
        raise ValueError("y must be 0/1")
    if labels.min() == labels.max():
        raise ValueError("y needs both classes")
    return labels, values


def auc(y: npt.ArrayLike, risk: npt.ArrayLike) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count one half)."""
    labels, values = _check(y, risk)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = (ends - (counts - 1) / 2.0)[inverse]
    n_bad = labels.sum()
    n_good = labels.size - n_bad
    return float((ranks[labels == 1].sum() - n_bad * (n_bad + 1) / 2.0) / (n_bad * n_good))


def gini(y: npt.ArrayLike, risk: npt.ArrayLike) -> float:
    """Gini coefficient (accuracy ratio): ``2 AUC - 1``."""
    return 2.0 * auc(y, risk) - 1.0


def ks(y: npt.ArrayLike, risk: npt.ArrayLike) -> float:
    """Kolmogorov-Smirnov statistic between the risk distributions of bads and goods."""
    labels, values = _check(y, risk)
    _, inverse = np.unique(values, return_inverse=True)
    bads = np.bincount(inverse, weights=labels)
    goods = np.bincount(inverse, weights=1.0 - labels)
    gap = np.cumsum(bads) / bads.sum() - np.cumsum(goods) / goods.sum()
    return float(np.max(np.abs(gap)))


def brier(y: npt.ArrayLike, pd: npt.ArrayLike) -> float:
    """Mean squared error of probabilities of default."""
    labels = np.asarray(y, dtype=np.float64)
    probs = np.asarray(pd, dtype=np.float64)
    if labels.shape != probs.shape:
        raise ValueError("y and pd must have one length")
    return float(np.mean((probs - labels) ** 2))
