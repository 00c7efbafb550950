"""Training use case: data file → trained model artifact + registry metadata."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lendsafe.adapters.ml.artifact import ScoringModel, to_bytes
from lendsafe.adapters.ml.data import DataError, file_sha256, read_table, split_target
from lendsafe.adapters.ml.evaluation import calibration_section, performance
from lendsafe.adapters.ml.gbm import train_gbm
from lendsafe.adapters.ml.schema import infer_schema
from lendsafe.adapters.ml.scorecard_trainer import train_scorecard
from lendsafe.domain.scoring import PointsScaling
from lendsafe.domain.scoring.calibration import band_index, quantile_edges

KINDS = ("scorecard", "gbm")


@dataclass(frozen=True)
class TrainedModel:
    """Artifact bytes plus the metadata the registry stores beside them."""

    kind: str
    artifact: bytes
    metadata: dict[str, Any]


def train_file(
    path: Path, target: str, kind: str, bad_value: str | None, trained_on: str
) -> TrainedModel:
    """Train a model of ``kind`` on a CSV/Parquet file."""
    if kind not in KINDS:
        raise DataError(f"unknown model kind {kind!r}; use one of {KINDS}")
    frame = read_table(path)
    features, y = split_target(frame, target, bad_value)
    model, choices, extra = _fit(kind, features, y)
    scores, pd_ = model.score_frame(features)
    edges = quantile_edges(scores, 10)
    model.band_edges = edges
    model.band_counts = tuple(
        int(c) for c in np.bincount(band_index(scores, edges), minlength=len(edges) + 1)
    )
    metrics = {f"{k}_train": v for k, v in performance(y, pd_).items()}
    metadata = {
        "trained_on": trained_on,
        "data": {"file": path.name, "sha256": file_sha256(path), "rows": int(y.size)},
        "target": {"column": target, "bad_value": bad_value, "bad_rate": float(y.mean())},
        "schema": model.schema.to_dict(),
        "metrics": metrics,
        "choices": choices,
        **extra(model, y, edges),
    }
    return TrainedModel(kind, to_bytes(model), metadata)


def _fit(
    kind: str, features: Any, y: npt.NDArray[np.int64]
) -> tuple[ScoringModel, dict[str, Any], Any]:
    schema = infer_schema(features)
    scaling = PointsScaling()
    if kind == "scorecard":
        fit = train_scorecard(features, y, schema)
        choices = {"selected": fit.selected, "c": fit.c, "information_value": fit.information_value,
                   "trend": fit.trend, "trends": fit.trends}
        model = ScoringModel(kind, schema, scaling, (), (), scorecard=fit.scorecard)
        return model, choices, lambda *_: {}
    gbm = train_gbm(features, y, schema)
    model = ScoringModel(kind, schema, scaling, (), (), gbm=gbm)
    return model, gbm.choices, _gbm_calibration_report


def _gbm_calibration_report(
    model: ScoringModel, y: npt.NDArray[np.int64], edges: tuple[float, ...]
) -> dict[str, Any]:
    """Calibration on the inner out-of-fold predictions (data the booster did not train on)."""
    assert model.gbm is not None and model.gbm.oof_margin is not None
    pd_ = model.gbm.calibrator(model.gbm.oof_margin)
    section = calibration_section(model.scaling.score_from_pd(pd_), pd_, y, edges)
    return {"calibration_report": {"on": "inner out-of-fold predictions", **section}}
