"""Metrics and calibration by band."""

import numpy as np
import pytest

from lendsafe.domain.scoring.calibration import (
    band_index,
    band_report,
    quantile_edges,
    summarise,
)
from lendsafe.domain.scoring.metrics import auc, brier, gini, ks


def test_auc_hand_example_with_ties() -> None:
    y = np.array([1, 0, 1, 0])
    risk = np.array([0.9, 0.5, 0.5, 0.1])
    # pairs (bad, good): (0.9,0.5)=1, (0.9,0.1)=1, (0.5,0.5)=0.5, (0.5,0.1)=1 -> 3.5/4
    assert auc(y, risk) == pytest.approx(0.875)
    assert gini(y, risk) == pytest.approx(0.75)


def test_ks_and_brier_hand_example() -> None:
    y = np.array([1, 1, 0, 0])
    risk = np.array([0.9, 0.4, 0.6, 0.1])
    assert ks(y, risk) == pytest.approx(0.5)
    assert brier(y, risk) == pytest.approx((0.01 + 0.36 + 0.36 + 0.01) / 4)


def test_one_class_rejected() -> None:
    with pytest.raises(ValueError):
        auc(np.zeros(3), np.arange(3.0))


def test_band_report_counts_rates_and_approval() -> None:
    scores = np.array([500, 510, 550, 560, 600, 610.0])
    pd = np.array([0.5, 0.5, 0.2, 0.2, 0.05, 0.05])
    y = np.array([1, 0, 0, 1, 0, 0])
    edges = (540.0, 590.0)
    np.testing.assert_array_equal(band_index(scores, edges), [0, 0, 1, 1, 2, 2])
    rows = band_report(scores, pd, y, edges)
    assert [r.count for r in rows] == [2, 2, 2]
    assert [r.bad_rate for r in rows] == [0.5, 0.5, 0.0]
    assert [r.mean_pd for r in rows] == pytest.approx([0.5, 0.2, 0.05])
    assert [r.approval_rate for r in rows] == pytest.approx([1.0, 4 / 6, 2 / 6])
    assert rows[0].within_95ci is True
    summary = summarise(rows)
    assert summary.max_abs_gap == pytest.approx(0.3)
    assert summary.expected_calibration_error == pytest.approx((0 + 0.3 * 2 + 0.05 * 2) / 6)


def test_miscalibration_is_flagged() -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(600, 40, 20000)
    true_pd = 1 / (1 + np.exp((scores - 560) / 30))
    y = (rng.random(scores.size) < true_pd).astype(float)
    edges = quantile_edges(scores, 10)
    assert len(edges) == 9
    good = summarise(band_report(scores, true_pd, y, edges))
    bad = summarise(band_report(scores, true_pd / 2, y, edges))
    assert good.bands_outside_95ci <= 2
    assert bad.bands_outside_95ci >= 8
    assert bad.hosmer_lemeshow > 10 * good.hosmer_lemeshow
