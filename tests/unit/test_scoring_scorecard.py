"""Scorecard binning, missing and unseen-category rules, batch and single-row scoring."""

import math

import numpy as np
import pytest

from lendsafe.domain.scoring import (
    MISSING_CODE,
    UNSEEN_CODE,
    Bin,
    Characteristic,
    Kind,
    Scorecard,
    UnseenRule,
)
from lendsafe.domain.scoring.calibration import Calibrator
from lendsafe.domain.scoring.codec import scorecard_from_dict, scorecard_to_dict


def age(missing_points: float = 5.0) -> Characteristic:
    return Characteristic(
        name="age",
        kind=Kind.NUMERIC,
        bins=(Bin("< 25", 10.0, 20, 0.4), Bin("[25, 40)", 25.0, 50, 0.2), Bin(">= 40", 40.0, 30)),
        missing=Bin("missing", missing_points, 0),
        edges=(25.0, 40.0),
    )


def housing(rule: UnseenRule = UnseenRule.WORST_BIN) -> Characteristic:
    return Characteristic(
        name="housing",
        kind=Kind.CATEGORICAL,
        bins=(Bin("rent", 12.0, 40), Bin("own", 30.0, 50), Bin("free", 20.0, 10)),
        missing=Bin("missing", 18.0, 0),
        categories=("rent", "own", "for free"),
        category_bins=(0, 1, 2),
        unseen_rule=rule,
    )


def card() -> Scorecard:
    return Scorecard((age(), housing()), base_points=500.0)


def test_numeric_edges_are_left_closed() -> None:
    c = age()
    assert [c.index_of(v) for v in (18, 24.999, 25, 39.9, 40, 99)] == [0, 0, 1, 1, 2, 2]
    np.testing.assert_array_equal(c.indices(np.array([18, 25, 40.0, np.nan])), [0, 1, 2, 3])


def test_missing_values_get_the_explicit_missing_bin() -> None:
    sc = card()
    for value in (None, float("nan"), ""):
        result = sc.score_one({"age": value, "housing": value})
        assert result.bins == {"age": "missing", "housing": "missing"}
        assert result.score == pytest.approx(500 + 5 + 18)


def test_unseen_category_gets_worst_bin_points_by_default() -> None:
    result = card().score_one({"age": 30, "housing": "houseboat"})
    assert result.bins["housing"] == "unseen category"
    assert result.points["housing"] == 12.0  # lowest bin ("rent"), not 0 and not the mean
    assert result.score == pytest.approx(500 + 25 + 12)


def test_unseen_never_scores_above_any_bin_or_missing() -> None:
    c = Characteristic(
        "x",
        Kind.CATEGORICAL,
        (Bin("a", 10.0), Bin("b", 20.0)),
        Bin("missing", 3.0),
        (),
        ("a", "b"),
        (0, 1),
    )
    assert c.unseen_points == 3.0


def test_unseen_category_can_follow_missing_bin_rule() -> None:
    sc = Scorecard((age(), housing(UnseenRule.MISSING_BIN)))
    assert sc.score_one({"age": 30, "housing": "boat"}).points["housing"] == 18.0


def test_batch_equals_single_row_for_objects_and_codes() -> None:
    sc = card()
    ages = np.array([20, 30, np.nan, 45, 41.0])
    homes = np.array(["rent", "own", None, "castle", "for free"], dtype=object)
    codes = np.array([0, 1, MISSING_CODE, UNSEEN_CODE, 2])
    batch = sc.score_batch({"age": ages, "housing": homes})
    coded = sc.score_batch({"age": ages, "housing": codes})
    single = [
        sc.score_one({"age": a, "housing": h}).score for a, h in zip(ages, homes, strict=True)
    ]
    np.testing.assert_allclose(batch, single)
    np.testing.assert_allclose(coded, single)
    np.testing.assert_allclose(batch, [522, 555, 523, 552, 560])


def test_pd_follows_scaling() -> None:
    sc = card()
    result = sc.score_one({"age": 45, "housing": "own"})
    logit = (sc.scaling.offset - result.score) / sc.scaling.factor
    assert result.pd == pytest.approx(1 / (1 + math.exp(-logit)))
    assert sc.pd_batch({"age": np.array([45.0]), "housing": np.array(["own"])})[0] == pytest.approx(
        result.pd
    )


def test_missing_column_rejected() -> None:
    with pytest.raises(KeyError):
        card().score_batch({"age": np.array([1.0])})


def test_invalid_tables_rejected() -> None:
    with pytest.raises(ValueError):
        Characteristic("x", Kind.NUMERIC, (Bin("a", 1.0), Bin("b", 2.0)), Bin("m", 0.0), (3.0, 2.0))
    with pytest.raises(ValueError):
        Characteristic("x", Kind.CATEGORICAL, (Bin("a", 1.0),), Bin("m", 0.0), (), ("a",), (4,))


def test_codec_round_trip_scores_identically() -> None:
    sc = card()
    back = scorecard_from_dict(scorecard_to_dict(sc))
    cols = {"age": np.array([20.0, np.nan]), "housing": np.array(["x", "own"], dtype=object)}
    np.testing.assert_array_equal(back.score_batch(cols), sc.score_batch(cols))
    assert back == sc


ISOTONIC = Calibrator("isotonic", (-3.0, -1.0, 0.5, 2.0), (0.02, 0.15, 0.55, 0.9))
PLATT = Calibrator("platt", (0.8, -0.2), ())


@pytest.mark.parametrize("pd_map", [ISOTONIC, PLATT])
def test_a_pd_map_gives_the_same_pd_one_row_at_a_time_and_in_batch(pd_map: Calibrator) -> None:
    sc = Scorecard((age(), housing()), base_points=500.0, pd_map=pd_map)
    ages = np.array([20, 30, np.nan, 45, 41.0])
    homes = np.array(["rent", "own", None, "castle", "for free"], dtype=object)
    batch = sc.pd_batch({"age": ages, "housing": homes})
    single = [sc.score_one({"age": a, "housing": h}).pd for a, h in zip(ages, homes, strict=True)]
    np.testing.assert_allclose(batch, single, rtol=1e-12)
    logits = (sc.scaling.offset - sc.score_batch({"age": ages, "housing": homes})) \
        / sc.scaling.factor
    np.testing.assert_allclose(batch, pd_map(logits), rtol=1e-12)  # the map, not the scaling
    plain = card().pd_batch({"age": ages, "housing": homes})
    assert not np.allclose(batch, plain)


def test_the_scalar_calibrator_matches_the_array_one_everywhere() -> None:
    margins = [-1e6, -50.0, -3.0, -2.0, -1.0, 0.0, 0.5, 1.7, 2.0, 50.0, 1e6]
    for pd_map in (ISOTONIC, PLATT):
        np.testing.assert_allclose([pd_map.one(m) for m in margins], pd_map(margins),
                                   rtol=1e-12)  # no overflow at either end
    assert ISOTONIC.one(-0.25) == pytest.approx(0.15 + (0.55 - 0.15) * 0.75 / 1.5)


def test_codec_keeps_the_pd_map_and_reads_older_documents_without_one() -> None:
    sc = Scorecard((age(), housing()), base_points=500.0, pd_map=ISOTONIC)
    document = scorecard_to_dict(sc)
    assert scorecard_from_dict(document) == sc
    del document["pd_map"]
    assert scorecard_from_dict(document).pd_map is None
    assert "pd_map" not in scorecard_to_dict(card())  # older artifacts keep their bytes
