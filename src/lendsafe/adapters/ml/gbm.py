"""LightGBM challenger: monotone where the data says so, early-stopped, calibrated.

Everything is decided from the training data alone:

- **Encoding.** Numeric columns stay numeric. A categorical column becomes the rank of its
  category by smoothed training bad rate (prior weight 10), so risk rises with the code; a missing
  value is its own category when training had missing values. A category never seen in training
  gets the riskiest code, and a missing value in a column that had none in training gets the most
  adverse value (the riskiest code, or the numeric extreme on the risky side of a monotone
  constraint, else the training median) — the same conservative rule as the scorecard.
- **Monotone constraints.** A categorical code is constrained increasing by construction. A numeric
  column is constrained in the direction of its Spearman correlation with the target when that
  correlation is significant (|z| > 2.576) *and* the bad rates of its deciles follow the same
  direction (decile-level Spearman ≥ 0.6); otherwise it is left free.
- **Capacity and early stopping.** A small grid of tree sizes (2, 4, 8, 16 leaves) is compared by
  5-fold stratified inner cross-validation with early stopping on the held-out fold's AUC
  (100 rounds of patience), which keeps rare-bad data from over-fitting; the winner is refitted on
  all rows with the averaged best number of rounds.
- **Calibration.** Platt and centred isotonic calibration are compared on the inner folds'
  out-of-fold margins (see :mod:`lendsafe.adapters.ml.calibrators`).

Reason codes come from ``Booster.predict(pred_contrib=True)`` (TreeSHAP): per-feature
contributions to the raw log-odds of bad that add up, with the bias term, to the raw margin.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.stats import spearmanr
from sklearn.model_selection import StratifiedKFold

from lendsafe.adapters.ml.calibrators import choose_calibrator
from lendsafe.adapters.ml.schema import DataSchema, as_text, numeric_column
from lendsafe.domain.scoring.calibration import Calibrator
from lendsafe.domain.scoring.metrics import auc

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
LEAF_GRID = (2, 4, 8, 16)
MISSING_KEY = "\x00missing"
BASE_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "metric": "auc",
    "learning_rate": 0.03,
    "min_child_samples": 20,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "monotone_constraints_method": "advanced",
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": 1,
    "verbosity": -1,
}


@dataclass(frozen=True)
class FeatureEncoding:
    """How one column becomes a float feature."""

    name: str
    kind: str
    monotone: int
    order: tuple[str, ...] = ()
    missing_value: float | None = None

    def encode(self, series: pd.Series) -> FloatArray:
        """Float feature column (NaN only where the model saw missing values in training)."""
        if self.kind == "numeric":
            values = numeric_column(series)
        else:
            values = _category_ranks(as_text(series), self.order)
        if self.missing_value is not None:
            values = np.where(np.isnan(values), self.missing_value, values)
        return values

    def encode_value(self, value: object) -> float:
        """One raw value as a float feature (single-row scoring path, no pandas)."""
        number = _to_float(value) if self.kind == "numeric" else _rank_of(value, self.order)
        if self.missing_value is not None and number != number:
            return self.missing_value
        return number


def _to_float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")


def _rank_of(value: object, order: tuple[str, ...]) -> float:
    if value is None or (isinstance(value, float) and value != value):
        key = MISSING_KEY
    else:
        key = str(value).strip() or MISSING_KEY
    if key in order:
        return float(order.index(key))
    return float("nan") if key == MISSING_KEY else float(len(order) - 1)


def _category_ranks(text: pd.Series, order: tuple[str, ...]) -> FloatArray:
    rank = {c: float(i) for i, c in enumerate(order)}
    worst = float(len(order) - 1)
    missing = rank.get(MISSING_KEY, np.nan)
    out = [missing if pd.isna(v) else rank.get(v, worst) for v in text.to_numpy(dtype=object)]
    return np.asarray(out, dtype=np.float64)


@dataclass
class GbmModel:
    """A trained challenger: booster, feature encodings, calibrator and training choices."""

    booster: lgb.Booster
    encodings: list[FeatureEncoding]
    calibrator: Calibrator
    choices: dict[str, Any] = field(default_factory=dict)
    oof_margin: FloatArray | None = None  # inner out-of-fold margins (training only, not stored)

    @property
    def features(self) -> list[str]:
        """Feature names, in booster order."""
        return [e.name for e in self.encodings]

    def matrix(self, frame: pd.DataFrame) -> FloatArray:
        """Encoded feature matrix."""
        return np.column_stack([e.encode(frame[e.name]) for e in self.encodings])

    def row(self, values: Mapping[str, object]) -> FloatArray:
        """Encoded ``(1, m)`` matrix of one application given as a mapping."""
        return np.asarray([[e.encode_value(values.get(e.name)) for e in self.encodings]])

    def margin(self, x: FloatArray) -> FloatArray:
        """Raw log-odds of bad."""
        return np.asarray(self.booster.predict(x, raw_score=True), dtype=np.float64)

    def pd(self, x: FloatArray) -> FloatArray:
        """Calibrated probability of default."""
        return self.calibrator(self.margin(x))

    def contributions(self, x: FloatArray) -> FloatArray:
        """TreeSHAP contributions to the raw margin: one column per feature, then the bias."""
        return np.asarray(self.booster.predict(x, pred_contrib=True), dtype=np.float64)


def train_gbm(features: pd.DataFrame, y: IntArray, schema: DataSchema, seed: int = 42) -> GbmModel:
    """Train the challenger on the given rows only."""
    encodings = [_encoding(features[c.name], y, c.kind) for c in schema.columns]
    x = np.column_stack([e.encode(features[e.name]) for e in encodings])
    params = {**BASE_PARAMS, "seed": seed, "monotone_constraints": [e.monotone for e in encodings]}
    folds = list(StratifiedKFold(5, shuffle=True, random_state=seed).split(x, y))
    trials = [_inner_cv(x, y, {**params, "num_leaves": leaves}, folds) for leaves in LEAF_GRID]
    best = max(trials, key=lambda t: t["auc"])
    booster = lgb.train(best["params"], lgb.Dataset(x, y, free_raw_data=False), best["rounds"])
    calibrator, briers = choose_calibrator(best["oof"], y, seed)
    choices = {
        "num_leaves": best["params"]["num_leaves"],
        "rounds": best["rounds"],
        "inner_auc": {str(t["params"]["num_leaves"]): t["auc"] for t in trials},
        "calibration": {"method": calibrator.method, "cross_fitted_brier": briers},
        "monotone": {e.name: e.monotone for e in encodings},
    }
    return GbmModel(booster, encodings, calibrator, choices, best["oof"])


def _inner_cv(
    x: FloatArray, y: IntArray, params: dict[str, Any], folds: list[tuple[IntArray, IntArray]]
) -> dict[str, Any]:
    oof = np.zeros(y.size, dtype=np.float64)
    rounds = []
    for train_idx, valid_idx in folds:
        train = lgb.Dataset(x[train_idx], y[train_idx])
        valid = lgb.Dataset(x[valid_idx], y[valid_idx], reference=train)
        booster = lgb.train(
            params,
            train,
            2000,
            valid_sets=[valid],
            callbacks=[lgb.early_stopping(100, verbose=False)],
        )
        rounds.append(booster.best_iteration)
        oof[valid_idx] = booster.predict(x[valid_idx], raw_score=True, num_iteration=rounds[-1])
    return {
        "params": params,
        "rounds": max(1, round(float(np.mean(rounds)))),
        "oof": oof,
        "auc": auc(y, oof),
    }


def _encoding(series: pd.Series, y: IntArray, kind: str) -> FeatureEncoding:
    if kind == "numeric":
        values = numeric_column(series)
        sign = monotone_sign(values, y)
        return FeatureEncoding(str(series.name), kind, sign, (), _numeric_fill(values, sign))
    text = as_text(series)
    has_missing = bool(text.isna().any())
    keys = text.fillna(MISSING_KEY).to_numpy(dtype=object)
    order = _order_by_bad_rate(keys, y)
    fill = None if has_missing else float(len(order) - 1)
    return FeatureEncoding(str(series.name), kind, 1, order, fill)


def _order_by_bad_rate(
    keys: npt.NDArray[np.object_], y: IntArray, prior: float = 10.0
) -> tuple[str, ...]:
    frame = pd.DataFrame({"k": keys, "y": y})
    stats = frame.groupby("k", sort=True)["y"].agg(["sum", "count"])
    smoothed = (stats["sum"] + prior * y.mean()) / (stats["count"] + prior)
    return tuple(str(k) for k in smoothed.sort_values(kind="stable").index)


def _numeric_fill(values: FloatArray, sign: int) -> float | None:
    finite = values[~np.isnan(values)]
    if finite.size < values.size or finite.size == 0:
        return None
    if sign == 0:
        return float(np.median(finite))
    return float(finite.max() if sign > 0 else finite.min())


def monotone_sign(values: FloatArray, y: IntArray) -> int:
    """+1 / -1 when risk rises / falls with the value consistently in the data, else 0."""
    mask = ~np.isnan(values)
    x, t = values[mask], y[mask]
    if x.size < 50 or np.unique(x).size < 3 or t.min() == t.max():
        return 0
    rho = float(spearmanr(x, t).statistic)
    if not np.isfinite(rho) or abs(rho) * np.sqrt(x.size - 1) <= 2.576:
        return 0
    edges = np.unique(np.quantile(x, np.linspace(0.1, 0.9, 9)))
    groups = np.searchsorted(edges, x, side="right")
    rates = np.bincount(groups, weights=t) / np.maximum(np.bincount(groups), 1)
    present = np.bincount(groups) > 0
    if present.sum() < 3:
        return int(np.sign(rho))
    agreement = float(spearmanr(np.flatnonzero(present), rates[present]).statistic)
    return int(np.sign(rho)) if np.sign(agreement) == np.sign(rho) and abs(agreement) >= 0.6 else 0
