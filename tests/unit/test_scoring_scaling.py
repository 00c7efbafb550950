"""Points scaling against hand computations."""

import math

import numpy as np
import pytest

from lendsafe.domain.scoring.scaling import PointsScaling


def test_factor_and_offset_match_hand_computation() -> None:
    s = PointsScaling(pdo=20, base_odds=50, base_points=600)
    factor = 20 / math.log(2)  # 28.8539...
    assert s.factor == pytest.approx(factor)
    assert s.offset == pytest.approx(600 - factor * math.log(50))  # 487.123...
    assert s.offset == pytest.approx(487.1229, abs=1e-4)


def test_base_odds_score_base_points_and_doubling_adds_pdo() -> None:
    s = PointsScaling(pdo=20, base_odds=50, base_points=600)
    assert s.score_from_odds(50) == pytest.approx(600)
    assert s.score_from_odds(100) == pytest.approx(620)
    assert s.score_from_odds(25) == pytest.approx(580)


def test_pd_and_score_are_inverse() -> None:
    s = PointsScaling()
    pd = np.array([0.01, 1 / 51, 0.3, 0.9])
    back = s.pd_from_score(s.score_from_pd(pd))
    np.testing.assert_allclose(back, pd, rtol=1e-9)
    assert s.score_from_pd(np.array([1 / 51]))[0] == pytest.approx(600)  # odds 50:1


def test_invalid_scaling_rejected() -> None:
    with pytest.raises(ValueError):
        PointsScaling(pdo=0)
