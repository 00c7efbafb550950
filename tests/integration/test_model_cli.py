"""Train → evaluate round trips through ``lendsafe model`` on the German credit data."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from lendsafe.adapters.ml.artifact import from_bytes
from lendsafe.adapters.ml.registry import ModelRegistry
from lendsafe.domain.scoring.metrics import auc
from lendsafe.domain.scoring.reasons import scorecard_reasons
from lendsafe.entrypoints.cli_model import model_app

GERMAN = Path(__file__).parents[2] / "src" / "lendsafe" / "data" / "credit" / "german_credit.csv.gz"
TARGET = "creditability"
runner = CliRunner()


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("models")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LENDSAFE_MODELS_DIR", str(folder))
        yield folder


def cli(*args: str) -> Any:
    result = runner.invoke(model_app, list(args))
    assert result.exit_code == 0, result.output + str(result.exception)
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def scorecard_id(models_dir: Path) -> str:
    out = cli(
        "train", "--data", str(GERMAN), "--target", TARGET, "--json", "--trained-on", "2026-01-02"
    )
    assert out["kind"] == "scorecard"
    return str(out["model_id"])


@pytest.fixture(scope="module")
def gbm_id(models_dir: Path) -> str:
    out = cli("train", "--data", str(GERMAN), "--target", TARGET, "--kind", "gbm", "--json")
    assert out["kind"] == "gbm"
    return str(out["model_id"])


def german() -> tuple[pd.DataFrame, np.ndarray]:
    frame = pd.read_csv(GERMAN)
    y = (frame.pop(TARGET) == "bad").to_numpy(dtype=np.int64)
    return frame, y


@pytest.mark.parametrize("kind_fixture", ["scorecard_id", "gbm_id"])
def test_train_evaluate_round_trip(kind_fixture: str, request: pytest.FixtureRequest) -> None:
    model_id = request.getfixturevalue(kind_fixture)
    report = cli("evaluate", model_id, "--data", str(GERMAN), "--target", TARGET, "--json")
    for key in ("auc", "ks", "gini", "brier", "calibration", "bands"):
        assert key in report
    artifact, meta = ModelRegistry(Path(os.environ["LENDSAFE_MODELS_DIR"])).load(model_id)
    assert report["auc"] == pytest.approx(meta["metrics"]["auc_train"])
    features, y = german()
    _, pd_ = from_bytes(artifact).score_frame(features)
    assert report["auc"] == pytest.approx(auc(y, pd_))
    assert 0.7 < report["auc"] < 1.0
    assert report["gini"] == pytest.approx(2 * report["auc"] - 1)
    bands = report["bands"]
    assert sum(b["count"] for b in bands) == 1000
    assert bands[0]["approval_rate"] == pytest.approx(1.0)
    rates = [b["bad_rate"] for b in bands]
    assert rates[0] > rates[-1]  # band 1 is the riskiest
    assert meta["data"]["sha256"] and meta["data"]["rows"] == 1000
    assert meta["target"]["bad_rate"] == pytest.approx(0.3)


def test_list_and_show(scorecard_id: str, gbm_id: str) -> None:
    ids = {m["model_id"] for m in cli("list", "--json")}
    assert {scorecard_id, gbm_id} <= ids
    shown = cli("show", scorecard_id[:8], "--json")
    assert shown["model_id"] == scorecard_id
    assert shown["trained_on"] == "2026-01-02"
    assert shown["scorecard"]["characteristics"]
    text = runner.invoke(model_app, ["show", scorecard_id])
    assert text.exit_code == 0 and "unseen category" in text.stdout


def test_scorecard_unseen_category_and_reasons(scorecard_id: str, models_dir: Path) -> None:
    model = from_bytes(ModelRegistry(models_dir).load(scorecard_id)[0])
    card = model.scorecard
    assert card is not None
    features, _ = german()
    row = features.iloc[[0]].copy()
    cat = next(c for c in card.characteristics if c.categories)
    row[cat.name] = "a value never seen in training"
    bins = card.bin_matrix(model.columns(row))
    points = card.points_matrix(bins)[0]
    j = card.names.index(cat.name)
    assert points[j] == pytest.approx(min(b.points for b in (*cat.bins, cat.missing)))
    reasons = scorecard_reasons(card, bins[0])
    top = reasons[0]
    k = card.names.index(top.characteristic)
    best = max(range(len(card.characteristics[k].bins) + 1), key=card.characteristics[k].points_at)
    improved = bins.copy()
    improved[0, k] = best
    assert card.score_bins(improved)[0] - card.score_bins(bins)[0] == pytest.approx(top.lost_points)


def test_gbm_reasons_are_treeshap_faithful(gbm_id: str, models_dir: Path) -> None:
    model = from_bytes(ModelRegistry(models_dir).load(gbm_id)[0])
    gbm = model.gbm
    assert gbm is not None
    features, _ = german()
    x = gbm.matrix(features.iloc[:50])
    contrib = gbm.contributions(x)
    margin = gbm.margin(x)
    np.testing.assert_allclose(contrib.sum(axis=1), margin, atol=1e-9)
    for i in range(50):
        j = int(np.argmax(contrib[i, :-1]))
        if contrib[i, j] > 0:  # removing the top adverse contribution lowers the bad log-odds
            assert margin[i] - contrib[i, j] < margin[i]
            assert gbm.calibrator(np.array([margin[i] - contrib[i, j]])) <= gbm.pd(x[i : i + 1])


def test_gbm_unseen_category_is_conservative(gbm_id: str, models_dir: Path) -> None:
    model = from_bytes(ModelRegistry(models_dir).load(gbm_id)[0])
    gbm = model.gbm
    assert gbm is not None
    features, _ = german()
    name = next(e.name for e in gbm.encodings if e.kind == "categorical")
    row = features.iloc[[3]].copy()
    seen = [gbm.margin(gbm.matrix(row.assign(**{name: v})))[0] for v in features[name].unique()]
    unseen = gbm.margin(gbm.matrix(row.assign(**{name: "never seen"})))[0]
    assert unseen >= max(seen) - 1e-12
    single = gbm.pd(gbm.row(row.iloc[0].to_dict()))[0]
    assert single == pytest.approx(gbm.pd(gbm.matrix(row))[0])


def test_gbm_calibration_report_recorded(gbm_id: str, models_dir: Path) -> None:
    _, meta = ModelRegistry(models_dir).load(gbm_id)
    report = meta["calibration_report"]
    assert meta["choices"]["calibration"]["method"] in ("platt", "isotonic")
    assert sum(r["count"] for r in report["calibration"]) == 1000
    assert report["calibration_summary"]["expected_calibration_error"] < 0.1


def test_model_id_follows_artifact_content(
    scorecard_id: str, models_dir: Path, tmp_path: Path
) -> None:
    subset = pd.read_csv(GERMAN).iloc[:900]
    path = tmp_path / "subset.csv"
    subset.to_csv(path, index=False)
    other = cli("train", "--data", str(path), "--target", TARGET, "--json")["model_id"]
    assert other != scorecard_id
    again = cli("train", "--data", str(GERMAN), "--target", TARGET, "--json")["model_id"]
    assert again == scorecard_id  # same data, same artifact, same id (trained_on is metadata)
    registry = ModelRegistry(models_dir)
    artifact, meta = registry.load(scorecard_id)
    assert registry.register(artifact + b" ", "scorecard", meta) != scorecard_id


@pytest.mark.parametrize(
    ("rows", "args", "needle"),
    [
        (None, ["--data", "/no/such/file.csv", "--target", "y"], "not found"),
        ({"a": [1, 2], "y": [0, 1]}, ["--target", "nope"], "not in data"),
        ({"a": [1, 2], "y": [1, 1]}, ["--target", "y"], "single class"),
        ({"a": [1, 2], "y": ["x", "z"]}, ["--target", "y"], "--bad-value"),
        ({"a": [1, 2], "y": [0, 1]}, ["--target", "y", "--kind", "forest"], "unknown model kind"),
    ],
)
def test_bad_input_exits_2(
    rows: dict[str, list[Any]] | None,
    args: list[str],
    needle: str,
    tmp_path: Path,
    models_dir: Path,
) -> None:
    if rows is not None:
        path = tmp_path / "d.csv"
        pd.DataFrame(rows).to_csv(path, index=False)
        args = ["--data", str(path), *args]
    result = runner.invoke(model_app, ["train", *args])
    assert result.exit_code == 2
    assert needle in result.stderr


def test_unknown_model_exits_2(models_dir: Path) -> None:
    args = ["evaluate", "zzzz", "--data", str(GERMAN), "--target", TARGET]
    result = runner.invoke(model_app, args)
    assert result.exit_code == 2
    assert "unknown" in result.stderr
