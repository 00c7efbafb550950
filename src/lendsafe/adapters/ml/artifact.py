"""Model artifacts: one canonical JSON document per trained model, and scoring from it.

The artifact holds everything scoring needs — kind, data schema, points scaling, score bands and
the model itself (a domain scorecard table, or a LightGBM model string with its encodings and
calibrator) — and nothing about *when* or *from which file* it was trained (that is registry
metadata). Its bytes are canonical (sorted keys, fixed separators), so the SHA-256 of the bytes
identifies the model: the same model gives the same id, any change gives a new one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import pandas as pd

from lendsafe.adapters.ml.gbm import FeatureEncoding, GbmModel
from lendsafe.adapters.ml.schema import DataSchema, category_codes, numeric_column, require_columns
from lendsafe.domain.scoring import Kind, PointsScaling, Scorecard
from lendsafe.domain.scoring.calibration import Calibrator
from lendsafe.domain.scoring.codec import scorecard_from_dict, scorecard_to_dict

FORMAT_VERSION = 1
FloatArray = npt.NDArray[np.float64]


@dataclass
class ScoringModel:
    """A loaded model of either kind, scoring pandas frames through numpy arrays."""

    kind: str
    schema: DataSchema
    scaling: PointsScaling
    band_edges: tuple[float, ...]
    band_counts: tuple[int, ...]
    scorecard: Scorecard | None = None
    gbm: GbmModel | None = None

    def columns(self, frame: pd.DataFrame) -> dict[str, npt.NDArray[Any]]:
        """Scorecard input columns: floats for numeric, codes for categorical characteristics."""
        assert self.scorecard is not None
        out: dict[str, npt.NDArray[Any]] = {}
        for c in self.scorecard.characteristics:
            series = frame[c.name]
            out[c.name] = (
                numeric_column(series)
                if c.kind is Kind.NUMERIC
                else category_codes(series, c.categories)
            )
        return out

    def score_frame(self, frame: pd.DataFrame) -> tuple[FloatArray, FloatArray]:
        """Scores and probabilities of default of a table of applications."""
        require_columns(frame, self.schema)
        if self.scorecard is not None:
            scores = self.scorecard.score_batch(self.columns(frame))
            return scores, self.scorecard.pd_from_scores(scores)
        assert self.gbm is not None
        pd_ = self.gbm.pd(self.gbm.matrix(frame))
        return self.scaling.score_from_pd(pd_), pd_


def to_bytes(model: ScoringModel) -> bytes:
    """Canonical JSON bytes of a model."""
    doc: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "kind": model.kind,
        "schema": model.schema.to_dict(),
        "scaling": model.scaling.to_dict(),
        "band_edges": list(model.band_edges),
        "band_counts": list(model.band_counts),
    }
    if model.scorecard is not None:
        doc["scorecard"] = scorecard_to_dict(model.scorecard)
    if model.gbm is not None:
        doc["gbm"] = _gbm_to_dict(model.gbm)
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def from_bytes(data: bytes) -> ScoringModel:
    """Inverse of :func:`to_bytes`."""
    doc = json.loads(data)
    if doc.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"unsupported artifact format {doc.get('format_version')!r}")
    return ScoringModel(
        kind=doc["kind"],
        schema=DataSchema.from_dict(doc["schema"]),
        scaling=PointsScaling.from_dict(doc["scaling"]),
        band_edges=tuple(doc["band_edges"]),
        band_counts=tuple(doc["band_counts"]),
        scorecard=scorecard_from_dict(doc["scorecard"]) if "scorecard" in doc else None,
        gbm=_gbm_from_dict(doc["gbm"]) if "gbm" in doc else None,
    )


def _gbm_to_dict(model: GbmModel) -> dict[str, Any]:
    return {
        "booster": model.booster.model_to_string(),
        "encodings": [e.__dict__ | {"order": list(e.order)} for e in model.encodings],
        "calibrator": model.calibrator.to_dict(),
        "choices": model.choices,
    }


def _gbm_from_dict(doc: dict[str, Any]) -> GbmModel:
    encodings = [
        FeatureEncoding(
            e["name"], e["kind"], int(e["monotone"]), tuple(e["order"]), e["missing_value"]
        )
        for e in doc["encodings"]
    ]
    booster = lgb.Booster(model_str=doc["booster"])
    return GbmModel(booster, encodings, Calibrator.from_dict(doc["calibrator"]), doc["choices"])
