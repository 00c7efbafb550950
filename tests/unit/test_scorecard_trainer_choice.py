"""How the scorecard trainer picks its trend candidate and C from inner-CV AUCs."""

import numpy as np
import pandas as pd
import pytest

from lendsafe.adapters.ml.schema import infer_schema
from lendsafe.adapters.ml.scorecard_trainer import (
    C_GRID,
    PER_CHARACTERISTIC,
    ScorecardConfig,
    _trend_per_characteristic,
    choose_candidate,
    train_scorecard,
)

FOLDS = 10


def scores(*per_candidate: np.ndarray, n_c: int = 3) -> np.ndarray:
    """fold × candidate × C table: candidate i's per-fold AUCs at C index 1, lower elsewhere."""
    table = np.full((FOLDS, len(per_candidate), n_c), 0.5)
    for i, aucs in enumerate(per_candidate):
        table[:, i, 1] = aucs
    return table


def test_default_kept_when_a_rival_is_better_only_within_noise() -> None:
    default = np.linspace(0.75, 0.80, FOLDS)
    noisy_gain = default + 0.002 + np.tile([0.01, -0.01], FOLDS // 2)  # plain argmax picks it
    assert noisy_gain.mean() > default.mean()
    assert choose_candidate(scores(default, noisy_gain)) == (0, 1)


def test_rival_chosen_when_consistently_better() -> None:
    rng = np.random.default_rng(1)
    default = 0.78 + rng.normal(0, 0.01, FOLDS)
    better = default + 0.005 + rng.normal(0, 0.001, FOLDS)
    assert choose_candidate(scores(default, better)) == (1, 1)


def test_largest_significant_gain_wins_and_worse_rivals_never_do() -> None:
    default = np.linspace(0.75, 0.80, FOLDS)
    worse = default - 0.01
    small = default + 0.003
    large = default + 0.006
    assert choose_candidate(scores(default, worse, small, large)) == (3, 1)
    assert choose_candidate(scores(default, worse)) == (0, 1)


def test_each_candidate_takes_its_own_best_c() -> None:
    table = np.full((FOLDS, 2, len(C_GRID)), 0.6)
    table[:, 0, 2] = 0.70  # default best at C index 2
    table[:, 1, 5] = 0.69  # rival best at C index 5, still worse than the default
    assert choose_candidate(table) == (0, 2)
    table[:, 1, 6] = 0.72  # now consistently better, at C index 6
    assert choose_candidate(table) == (1, 6)


def test_stricter_level_needs_more_evidence() -> None:
    rng = np.random.default_rng(3)
    default = 0.78 + rng.normal(0, 0.01, FOLDS)
    rival = default + 0.003 + rng.normal(0, 0.003, FOLDS)
    assert choose_candidate(scores(default, rival), alpha=0.25) == (1, 1)
    assert choose_candidate(scores(default, rival), alpha=1e-6) == (0, 1)


def test_training_keeps_weak_but_informative_characteristics() -> None:
    """No fixed IV cut-off: a constant column (IV 0) is dropped, a weak flag (IV < 0.01) is not."""
    rng = np.random.default_rng(7)
    n = 600
    strong = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(1.0 - 1.5 * strong))).astype(np.int64)
    flag = np.zeros(n)
    for label, share in ((1, 0.52), (0, 0.48)):  # flag slightly more common among bads
        rows = rng.permutation(np.flatnonzero(y == label))
        flag[rows[: round(share * len(rows))]] = 1.0
    frame = pd.DataFrame({"strong": strong, "flag": flag, "constant": np.ones(n)})
    exact = ScorecardConfig(inner_folds=3, merge_points=0.0, merge_min_share=0.0)
    fit = train_scorecard(frame, y, infer_schema(frame), exact)
    assert fit.trend in (PER_CHARACTERISTIC, "auto_asc_desc", "auto")
    assert fit.c in C_GRID
    assert fit.information_value["constant"] == pytest.approx(0.0)
    assert 0 < fit.information_value["flag"] < 0.01  # under the old fixed cut-off
    assert fit.selected == ["strong", "flag"]
    # the default export merges bins within a point of each other: the regression gave the
    # flag 0.015 points between its values, so its one merged row is a constant in the base;
    # no score moves by a point (the merge by minimum share, off here, may move more)
    merged = train_scorecard(frame, y, infer_schema(frame),
                             ScorecardConfig(inner_folds=3, merge_min_share=0.0))
    assert merged.selected == ["strong"]
    columns = {c: frame[c].to_numpy() for c in frame.columns}
    assert np.abs(merged.scorecard.score_batch(columns)
                  - fit.scorecard.score_batch(columns)).max() < 1.0


def test_per_characteristic_choice_of_a_fold_never_reads_that_fold_s_labels() -> None:
    """The per-characteristic candidate scored in inner fold k is chosen without fold k's
    labels: flipping every label of fold k leaves it unchanged, while the choice over all
    folds (which may read them) does change for some fold and characteristic."""
    rng = np.random.default_rng(3)
    folds = [(np.array([], dtype=np.int64), np.arange(k * 40, (k + 1) * 40)) for k in range(5)]
    y = rng.integers(0, 2, size=200).astype(np.int64)
    cfg = ScorecardConfig()
    names = [f"x{j}" for j in range(6)]
    schema = infer_schema(pd.DataFrame({n: rng.normal(size=3) for n in names}))
    woe = {(k, trend): (pd.DataFrame(), pd.DataFrame({n: rng.normal(size=40) for n in names}))
           for k in range(5) for trend in cfg.trends}
    changed_somewhere = False
    for k, (_, valid) in enumerate(folds):
        flipped = y.copy()
        flipped[valid] = 1 - flipped[valid]
        assert (_trend_per_characteristic(woe, folds, y, schema, cfg, leave_out=k)
                == _trend_per_characteristic(woe, folds, flipped, schema, cfg, leave_out=k))
        changed_somewhere |= (_trend_per_characteristic(woe, folds, y, schema, cfg)
                              != _trend_per_characteristic(woe, folds, flipped, schema, cfg))
    assert changed_somewhere  # the test data can tell the two apart


def test_a_trained_scorecard_maps_scores_to_pd_through_its_calibrator() -> None:
    """The PD comes from a calibrator fitted on inner out-of-fold log-odds: it falls as the
    score rises (ranking, hence AUC, is the score's), and it is off only when asked."""
    rng = np.random.default_rng(11)
    n = 800
    x = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(1.0 - 2.0 * x))).astype(np.int64)
    frame = pd.DataFrame({"x": x, "noise": rng.normal(size=n)})
    fit = train_scorecard(frame, y, infer_schema(frame), ScorecardConfig(inner_folds=4))
    card = fit.scorecard
    assert card.pd_map is not None
    scores = np.sort(card.score_batch({"x": x, "noise": frame["noise"].to_numpy()}))
    pds = card.pd_from_scores(scores)
    assert np.all(np.diff(pds) <= 1e-12)
    assert not np.allclose(pds, card.scaling.pd_from_score(scores))
    plain = train_scorecard(frame, y, infer_schema(frame),
                            ScorecardConfig(inner_folds=4, calibrate=False)).scorecard
    assert plain.pd_map is None


def _missing_heavy_data(n: int = 2000) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """x predicts default; where x is missing (30 % of rows) 85 % default."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(1.2 - 1.0 * x))).astype(np.int64)
    gone = rng.random(n) < 0.3
    y[gone] = (rng.random(int(gone.sum())) < 0.85).astype(np.int64)
    x[gone] = np.nan
    return pd.DataFrame({"x": x, "noise": rng.normal(size=n)}), y, gone


def test_the_regression_is_fitted_on_the_woe_the_scorecard_scores_missing_values_with() -> None:
    """A missing value is scored with its own bin's points; the regression behind those
    points must have seen the same WoE (optbinning's transform puts 0 there by default).
    Fitted on 0, the missing rows' PD comes out far from their bad rate (0.95 against 0.85
    here); fitted on the empirical WoE, it matches on fresh data from the same source."""
    frame, y, _ = _missing_heavy_data()
    fit = train_scorecard(frame, y, infer_schema(frame), ScorecardConfig(inner_folds=4))
    test, y_test, gone = _missing_heavy_data(20000)
    pds = fit.scorecard.pd_batch({c: test[c].to_numpy() for c in test.columns})
    assert abs(pds[gone].mean() - y_test[gone].mean()) < 0.03
    assert abs(pds[~gone].mean() - y_test[~gone].mean()) < 0.03


def test_the_exported_score_is_the_mean_of_the_inner_models_scores() -> None:
    """Averaged export: on fresh rows the scorecard's log-odds equal the mean over the inner
    models of intercept + Σ coefficient · WoE (through optbinning's own transform)."""
    from lendsafe.adapters.ml import scorecard_trainer as trainer

    frame, y, _ = _missing_heavy_data()
    frame["grade"] = np.where(frame["noise"] > 0.5, "A", np.where(frame["noise"] > -0.5, "B",
                                                                   "C"))
    caught: list = []
    original = trainer._choose_settings

    def spy(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        result = original(*args, **kwargs)
        caught.append(result[4])
        return result

    trainer._choose_settings = spy  # type: ignore[assignment]
    try:
        schema = infer_schema(frame)
        exact = ScorecardConfig(inner_folds=4, merge_points=0.0, merge_min_share=0.0)
        card = train_scorecard(frame, y, schema, exact).scorecard
        merged = train_scorecard(frame, y, schema, ScorecardConfig(inner_folds=4)).scorecard
    finally:
        trainer._choose_settings = original  # type: ignore[assignment]
    fresh, _, _ = _missing_heavy_data(500)
    fresh["grade"] = np.where(fresh["noise"] > 0, "A", "C")
    prepared = trainer.prepare_frame(fresh, schema)
    members = caught[0]
    expected = np.mean([m.intercept + sum(
        w * m.binnings[n].transform(prepared[n].to_numpy(), metric="woe",
                                    metric_missing="empirical")
        for n, w in m.weights.items() if w) for m in members], axis=0)
    scores = card.score_batch({c: prepared[c].to_numpy() for c in prepared.columns})
    log_odds = (card.scaling.offset - scores) / card.scaling.factor
    assert np.allclose(log_odds, expected, atol=1e-9)
    # the default export merges bins within a point of each other and bins under 5 % of the
    # rows: fewer rows in the table, the same ranking to within noise
    assert sum(len(c.bins) for c in merged.characteristics) < sum(
        len(c.bins) for c in card.characteristics)
    assert all(c.bins and min(b.count for b in c.bins) >= 0.05 * len(y) * 0.7
               for c in merged.characteristics)
    columns = {c: prepared[c].to_numpy() for c in prepared.columns}
    assert np.corrcoef(merged.score_batch(columns), scores)[0, 1] > 0.99
