"""Score bands, calibration by band, and calibrators (a model's log-odds → probability).

A :class:`Calibrator` is plain numbers (fitted by ``adapters/ml/calibrators.py``): **Platt**,
``pd = sigmoid(a·margin + b)``, or **centred isotonic**, straight lines between points.

Bands are fixed at training time from the training scores (``quantile_edges``) and stored with
the model, so reports on later data use the same bands. Band 1 holds the lowest (riskiest)
scores. For each band the report gives the count, the observed bad rate, the mean predicted PD,
whether the observed rate lies inside the 95 % binomial interval around the predicted PD, and the
approval rate if the cut-off were put at the band's lower edge (this band and all safer ones
approved).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

Z_95 = 1.959963984540054
PD_FLOOR = 1e-4


@dataclass(frozen=True)
class Calibrator:
    """A fitted calibrator: ``method`` is ``platt`` or ``isotonic``."""

    method: str
    x: tuple[float, ...]
    y: tuple[float, ...]

    def __call__(self, margin: npt.ArrayLike) -> FloatArray:
        values = np.asarray(margin, dtype=np.float64)
        if self.method == "platt":
            a, b = self.x
            out = 0.5 * (1.0 + np.tanh(0.5 * (a * values + b)))  # the sigmoid, never overflows
        else:
            out = np.interp(values, self.x, self.y)
        return np.asarray(np.clip(out, PD_FLOOR, 1.0 - PD_FLOOR), dtype=np.float64)

    def one(self, margin: float) -> float:
        """The calibrated probability of one margin (no numpy: the live scoring path)."""
        if self.method == "platt":
            a, b = self.x
            z = a * margin + b
            value = 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))
        elif margin <= self.x[0]:
            value = self.y[0]
        elif margin >= self.x[-1]:
            value = self.y[-1]
        else:
            i = bisect.bisect_right(self.x, margin)
            x0, x1, y0, y1 = self.x[i - 1], self.x[i], self.y[i - 1], self.y[i]
            value = y0 + (y1 - y0) * (margin - x0) / (x1 - x0)
        return min(max(value, PD_FLOOR), 1.0 - PD_FLOOR)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form."""
        return {"method": self.method, "x": list(self.x), "y": list(self.y)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibrator:
        """Inverse of :meth:`to_dict`."""
        return cls(str(data["method"]), tuple(data["x"]), tuple(data["y"]))


def quantile_edges(scores: npt.ArrayLike, n_bands: int = 10) -> tuple[float, ...]:
    """Interior band edges at score quantiles (duplicates dropped), ascending."""
    if n_bands < 2:
        raise ValueError("at least two bands")
    values = np.asarray(scores, dtype=np.float64)
    qs = np.quantile(values, np.linspace(0.0, 1.0, n_bands + 1)[1:-1])
    edges = np.unique(np.round(qs, 6))
    return tuple(float(e) for e in edges if values.min() < e <= values.max())


def band_index(scores: npt.ArrayLike, edges: tuple[float, ...]) -> IntArray:
    """Zero-based band of each score (band ``i`` holds ``edges[i-1] <= s < edges[i]``)."""
    cut = np.asarray(edges, dtype=np.float64)
    return np.searchsorted(cut, np.asarray(scores, dtype=np.float64), side="right").astype(np.int64)


def band_label(i: int, edges: tuple[float, ...]) -> str:
    """Readable score range of zero-based band ``i``."""
    low = f"{edges[i - 1]:.1f}" if i > 0 else "-inf"
    high = f"{edges[i]:.1f}" if i < len(edges) else "inf"
    return f"[{low}, {high})"


@dataclass(frozen=True)
class BandRow:
    """Calibration and volume of one score band."""

    band: int
    label: str
    count: int
    bads: int
    bad_rate: float | None
    mean_pd: float | None
    within_95ci: bool | None
    approval_rate: float

    def as_dict(self) -> dict[str, object]:
        """Plain-dict form (JSON reports)."""
        return dict(self.__dict__)


def band_report(
    scores: npt.ArrayLike, pd: npt.ArrayLike, y: npt.ArrayLike, edges: tuple[float, ...]
) -> list[BandRow]:
    """One :class:`BandRow` per band, riskiest first."""
    index = band_index(scores, edges)
    probs = np.asarray(pd, dtype=np.float64)
    labels = np.asarray(y, dtype=np.float64)
    n_bands = len(edges) + 1
    counts = np.bincount(index, minlength=n_bands)
    bads = np.bincount(index, weights=labels, minlength=n_bands)
    pd_sum = np.bincount(index, weights=probs, minlength=n_bands)
    at_or_above = np.cumsum(counts[::-1])[::-1] / max(int(counts.sum()), 1)
    return [
        _row(i, edges, int(counts[i]), float(bads[i]), float(pd_sum[i]), float(at_or_above[i]))
        for i in range(n_bands)
    ]


def _row(
    i: int, edges: tuple[float, ...], n: int, bads: float, pd_sum: float, ar: float
) -> BandRow:
    if n == 0:
        return BandRow(i + 1, band_label(i, edges), 0, 0, None, None, None, ar)
    rate, mean_pd = bads / n, pd_sum / n
    half_width = Z_95 * math.sqrt(max(mean_pd * (1.0 - mean_pd), 1e-12) / n)
    inside = abs(rate - mean_pd) <= half_width
    return BandRow(i + 1, band_label(i, edges), n, round(bads), rate, mean_pd, inside, ar)


@dataclass(frozen=True)
class CalibrationSummary:
    """Whole-report calibration figures."""

    expected_calibration_error: float
    max_abs_gap: float
    hosmer_lemeshow: float
    bands_outside_95ci: int


def summarise(rows: list[BandRow]) -> CalibrationSummary:
    """Count-weighted mean gap, largest gap, Hosmer-Lemeshow statistic, bands outside the CI."""
    used = [r for r in rows if r.count > 0 and r.bad_rate is not None and r.mean_pd is not None]
    total = sum(r.count for r in used)
    gaps = [abs(r.bad_rate - r.mean_pd) for r in used]  # type: ignore[operator]
    ece = sum(g * r.count for g, r in zip(gaps, used, strict=True)) / max(total, 1)
    hl = sum(_hl_term(r) for r in used)
    outside = sum(1 for r in used if r.within_95ci is False)
    return CalibrationSummary(ece, max(gaps, default=0.0), hl, outside)


def _hl_term(row: BandRow) -> float:
    assert row.mean_pd is not None
    expected = row.mean_pd * row.count
    variance = max(expected * (1.0 - row.mean_pd), 1e-12)
    return (row.bads - expected) ** 2 / variance
