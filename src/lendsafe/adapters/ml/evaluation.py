"""Model reports: discrimination, calibration by band, approval by band, stability."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from lendsafe.adapters.ml.artifact import ScoringModel
from lendsafe.domain.scoring.calibration import band_index, band_report, summarise
from lendsafe.domain.scoring.metrics import auc, brier, gini, ks
from lendsafe.domain.scoring.stability import characteristic_stability, psi, stability_status

FloatArray = npt.NDArray[np.float64]


def performance(y: npt.NDArray[np.int64], pd_: FloatArray) -> dict[str, float]:
    """AUC, Gini, KS and Brier of probabilities of default."""
    return {"auc": auc(y, pd_), "gini": gini(y, pd_), "ks": ks(y, pd_), "brier": brier(y, pd_)}


def calibration_section(
    scores: FloatArray, pd_: FloatArray, y: npt.NDArray[np.int64], edges: tuple[float, ...]
) -> dict[str, Any]:
    """Calibration rows by band plus their summary."""
    rows = band_report(scores, pd_, y, edges)
    return {
        "calibration": [r.as_dict() for r in rows],
        "calibration_summary": asdict(summarise(rows)),
    }


def evaluate(
    model: ScoringModel, features: pd.DataFrame, y: npt.NDArray[np.int64]
) -> dict[str, Any]:
    """Full evaluation report of a model on labelled data."""
    scores, pd_ = model.score_frame(features)
    section = calibration_section(scores, pd_, y, model.band_edges)
    bands = [
        {k: r[k] for k in ("band", "label", "count", "bad_rate", "approval_rate")}
        for r in section["calibration"]
    ]
    report: dict[str, Any] = {
        "rows": int(y.size),
        "bad_rate": float(y.mean()),
        **performance(y, pd_),
        **section,
        "bands": bands,
        "stability": stability(model, features, scores),
    }
    return report


def stability(model: ScoringModel, features: pd.DataFrame, scores: FloatArray) -> dict[str, Any]:
    """Score PSI against the training band mix, and characteristic PSI for scorecards."""
    counts = np.bincount(band_index(scores, model.band_edges), minlength=len(model.band_counts))
    value = psi(np.asarray(model.band_counts, dtype=float), counts)
    out: dict[str, Any] = {"score_psi": value, "status": stability_status(value)}
    if model.scorecard is not None:
        bins = model.scorecard.bin_matrix(model.columns(features))
        out["characteristics"] = [
            {"characteristic": s.characteristic, "psi": s.psi, "status": s.status}
            for s in characteristic_stability(model.scorecard, bins)
        ]
    return out
