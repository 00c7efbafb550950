"""PSI and characteristic stability."""

import math

import numpy as np
import pytest

from lendsafe.domain.scoring import Bin, Characteristic, Kind, Scorecard
from lendsafe.domain.scoring.stability import (
    characteristic_stability,
    psi,
    score_psi,
    stability_status,
)


def test_psi_hand_example() -> None:
    expected = [0.25, 0.25, 0.5]
    actual = [0.2, 0.3, 0.5]
    hand = (0.2 - 0.25) * math.log(0.2 / 0.25) + (0.3 - 0.25) * math.log(0.3 / 0.25)
    assert psi(expected, actual) == pytest.approx(hand)
    assert psi([250, 250, 500], [40, 60, 100]) == pytest.approx(0.0202733, abs=1e-6)


def test_psi_zero_for_identical_and_large_for_emptied_bin() -> None:
    assert psi([1, 2, 3], [2, 4, 6]) == pytest.approx(0.0)
    assert psi([50, 50], [100, 0]) > 0.25


def test_thresholds() -> None:
    assert stability_status(0.0999) == "stable"
    assert stability_status(0.1) == "monitor"
    assert stability_status(0.2499) == "monitor"
    assert stability_status(0.25) == "unstable"


def test_characteristic_stability_uses_training_counts() -> None:
    c = Characteristic(
        "x", Kind.NUMERIC, (Bin("lo", 1.0, 50), Bin("hi", 2.0, 50)), Bin("missing", 0.0, 0), (5.0,)
    )
    sc = Scorecard((c,))
    same = sc.bin_matrix({"x": np.array([1.0, 9.0] * 50)})
    shifted = sc.bin_matrix({"x": np.array([9.0] * 90 + [np.nan] * 10)})
    assert characteristic_stability(sc, same)[0].status == "stable"
    report = characteristic_stability(sc, shifted)[0]
    assert report.status == "unstable"
    assert report.actual_share == pytest.approx((0.0, 0.9, 0.1, 0.0))


def test_score_psi() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(600, 50, 5000)
    edges = np.quantile(a, np.linspace(0.1, 0.9, 9))
    assert score_psi(a, rng.normal(600, 50, 5000), edges) < 0.1
    assert score_psi(a, rng.normal(660, 50, 5000), edges) >= 0.25
