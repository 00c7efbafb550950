"""Reason codes are faithful to the score."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lendsafe.domain.scoring import Bin, Characteristic, Kind, Scorecard
from lendsafe.domain.scoring.reasons import (
    contribution_reasons,
    lost_points,
    scorecard_reasons,
    top_reason_indices,
)


def card() -> Scorecard:
    chars = tuple(
        Characteristic(
            f"c{j}",
            Kind.NUMERIC,
            tuple(Bin(f"b{i}", float((i * 7 + j * 3) % 11)) for i in range(4)),
            Bin("missing", float(j)),
            (1.0, 2.0, 3.0),
        )
        for j in range(5)
    )
    return Scorecard(chars, base_points=400.0)


@given(st.lists(st.integers(min_value=0, max_value=4), min_size=5, max_size=5))
def test_neutralising_top_reason_raises_score_by_lost_points(values: list[int]) -> None:
    sc = card()
    row = {f"c{j}": (np.nan if v == 4 else v + 0.5) for j, v in enumerate(values)}
    bins = sc.bin_matrix({k: np.array([v]) for k, v in row.items()})
    reasons = scorecard_reasons(sc, bins[0])
    before = sc.score_one(row).score
    if not reasons:
        assert before == pytest.approx(400 + sc.max_points().sum())
        return
    top = reasons[0]
    assert [r.lost_points for r in reasons] == sorted(
        (r.lost_points for r in reasons), reverse=True
    )
    char = next(c for c in sc.characteristics if c.name == top.characteristic)
    best = max(range(len(char.bins) + 1), key=char.points_at)
    best_value = np.nan if best == char.missing_index else float(best) + 0.5
    after = sc.score_one({**row, top.characteristic: best_value}).score
    assert after - before == pytest.approx(top.lost_points)


def test_batch_reasons_match_single_row() -> None:
    sc = card()
    cols = {f"c{j}": np.array([0.5, 3.5, np.nan, 1.5]) for j in range(5)}
    bins = sc.bin_matrix(cols)
    losses = lost_points(sc, bins)
    top = top_reason_indices(losses, top=3)
    for i in range(4):
        single = [r.characteristic for r in scorecard_reasons(sc, bins[i], top=3)]
        assert [sc.names[j] for j in top[i][: len(single)]] == single


def test_contribution_reasons_only_adverse_and_ranked() -> None:
    reasons = contribution_reasons(["a", "b", "c", "d"], np.array([0.2, -0.5, 0.7, 0.0]))
    assert [(r.feature, r.contribution) for r in reasons] == [("c", 0.7), ("a", 0.2)]
    with pytest.raises(ValueError):
        contribution_reasons(["a"], np.array([0.1, 0.2]))
