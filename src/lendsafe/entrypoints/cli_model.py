"""``lendsafe model ...``: train, evaluate, list and show credit models.

Models live in the registry directory ``LENDSAFE_MODELS_DIR`` (default ``var/models``). Bad input
(missing file or column, a target with one class or no recognisable bad value, unknown model)
prints a one-line message on stderr and exits with code 2.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from lendsafe.adapters.ml.registry import ModelRegistry, RegistryError, models_dir

if TYPE_CHECKING:  # the training stack (sklearn, optbinning, lightgbm) loads only when used
    from lendsafe.adapters.ml.artifact import ScoringModel

model_app = typer.Typer(no_args_is_help=True, help="Credit models: scorecard and GBM challenger.")
T = TypeVar("T")
out = Console()


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)


def _guard(action: Callable[[], T]) -> T:
    from lendsafe.adapters.ml.data import DataError

    try:
        return action()
    except (DataError, RegistryError) as exc:
        _fail(str(exc))
    except KeyError as exc:
        _fail(str(exc.args[0]) if exc.args else "missing column")


def _registry() -> ModelRegistry:
    return ModelRegistry(models_dir())


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


@model_app.command()
def train(
    data: Path = typer.Option(..., "--data", help="CSV (optionally .gz) or Parquet file."),
    target: str = typer.Option(..., "--target", help="Target column (0/1 or text)."),
    kind: str = typer.Option("scorecard", "--kind", help="scorecard or gbm."),
    bad_value: str | None = typer.Option(None, "--bad-value", help="Target value meaning bad."),
    trained_on: str | None = typer.Option(None, "--trained-on", help="Date recorded (YYYY-MM-DD)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Train a model on a data file and register it."""
    when = trained_on or dt.datetime.now(dt.UTC).date().isoformat()
    from lendsafe.adapters.ml.training import train_file

    trained = _guard(lambda: train_file(data, target, kind, bad_value, when))
    model_id = _registry().register(trained.artifact, trained.kind, trained.metadata)
    meta = trained.metadata
    summary = {
        "model_id": model_id,
        "kind": kind,
        **meta["metrics"],
        "rows": meta["data"]["rows"],
        "bad_rate": meta["target"]["bad_rate"],
        "models_dir": str(models_dir()),
    }
    if as_json:
        _print_json(summary)
        return
    table = Table(title=f"Trained {kind} {model_id}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    out.print(table)


def _load(model_id: str) -> tuple[str, ScoringModel, dict[str, Any]]:
    from lendsafe.adapters.ml.artifact import from_bytes

    registry = _registry()
    full = _guard(lambda: registry.resolve(model_id))
    artifact, meta = _guard(lambda: registry.load(full))
    return full, from_bytes(artifact), meta


@model_app.command("evaluate")
def evaluate_cmd(
    model_id: str = typer.Argument(..., help="Model id or unique prefix."),
    data: Path = typer.Option(..., "--data", help="Labelled CSV or Parquet file."),
    target: str = typer.Option(..., "--target", help="Target column."),
    bad_value: str | None = typer.Option(None, "--bad-value", help="Target value meaning bad."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Evaluate a registered model on labelled data."""
    full, model, _ = _load(model_id)
    from lendsafe.adapters.ml.data import read_table, split_target
    from lendsafe.adapters.ml.evaluation import evaluate

    frame = _guard(lambda: read_table(data))
    features, y = _guard(lambda: split_target(frame, target, bad_value))
    report = {"model_id": full, "kind": model.kind, **_guard(lambda: evaluate(model, features, y))}
    if as_json:
        _print_json(report)
        return
    _print_evaluation(report)


def _print_evaluation(report: dict[str, Any]) -> None:
    head = " ".join(f"{k}={report[k]:.4f}" for k in ("auc", "gini", "ks", "brier"))
    out.print(f"{report['model_id']} on {report['rows']} rows: {head}")
    table = Table(title="Calibration and approval by score band (band 1 = riskiest)")
    for name in ("band", "score range", "count", "bad rate", "mean PD", "in 95% CI", "approval"):
        table.add_column(name, justify="right")
    for r in report["calibration"]:
        table.add_row(
            str(r["band"]),
            r["label"],
            str(r["count"]),
            _pct(r["bad_rate"]),
            _pct(r["mean_pd"]),
            str(r["within_95ci"]),
            _pct(r["approval_rate"]),
        )
    out.print(table)
    stab = report["stability"]
    out.print(f"score PSI vs training: {stab['score_psi']:.4f} ({stab['status']})")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


@model_app.command("list")
def list_cmd(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List registered models."""
    metas = _registry().entries()
    rows = [
        {
            "model_id": m["model_id"],
            "kind": m["kind"],
            "trained_on": m.get("trained_on"),
            "data": m["data"]["file"],
            "rows": m["data"]["rows"],
            "auc_train": m["metrics"]["auc_train"],
        }
        for m in metas
    ]
    if as_json:
        _print_json(rows)
        return
    table = Table(title=f"Models in {models_dir()}")
    for name in ("model_id", "kind", "trained_on", "data", "rows", "auc_train"):
        table.add_column(name)
    for r in rows:
        table.add_row(*(f"{v:.4f}" if isinstance(v, float) else str(v) for v in r.values()))
    out.print(table)


@model_app.command()
def show(
    model_id: str = typer.Argument(..., help="Model id or unique prefix."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show a model: the points table of a scorecard, the training choices of a GBM."""
    full, model, meta = _load(model_id)
    if as_json:
        from lendsafe.domain.scoring.codec import scorecard_to_dict

        body = scorecard_to_dict(model.scorecard) if model.scorecard else None
        _print_json({**meta, "scorecard": body})
        return
    out.print(f"{full} ({model.kind}) trained {meta.get('trained_on')} on {meta['data']['file']}")
    if model.scorecard is None:
        _print_gbm(meta)
        return
    _print_scorecard(model)


def _print_scorecard(model: ScoringModel) -> None:
    card = model.scorecard
    assert card is not None
    s = card.scaling
    table = Table(
        title=f"Scorecard (PDO {s.pdo:g}, {s.base_odds:g}:1 at {s.base_points:g}; "
        f"base points {card.base_points:.1f})"
    )
    for name in ("characteristic", "bin", "points", "count", "bad rate"):
        table.add_column(
            name, justify="right" if name in ("points", "count", "bad rate") else "left"
        )
    for c in card.characteristics:
        for b in (*c.bins, c.missing):
            table.add_row(c.name, b.label, f"{b.points:.1f}", str(b.count), _pct(b.bad_rate))
        if c.categories:
            table.add_row(
                c.name,
                f"unseen category ({c.unseen_rule.value})",
                f"{c.unseen_points:.1f}",
                "-",
                "-",
            )
        table.add_section()
    out.print(table)


def _print_gbm(meta: dict[str, Any]) -> None:
    table = Table(title="GBM challenger training choices")
    table.add_column("choice")
    table.add_column("value")
    for key, value in meta.get("choices", {}).items():
        table.add_row(key, json.dumps(value, default=str))
    out.print(table)


@model_app.command()
def monitor(
    model_id: str = typer.Argument(..., help="Model id or unique prefix."),
    since: str | None = typer.Option(None, "--since", help="Only applications from this date."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Score PSI and characteristic stability of a model on incoming applications."""
    from lendsafe.entrypoints.cli_decide import monitor_report

    report = _guard(lambda: monitor_report(model_id, since))
    if as_json:
        _print_json(report)
        return
    psi = report["score_psi"]
    out.print(f"{report['model_id']}: {report['applications']} applications, score PSI "
              f"{'-' if psi is None else f'{psi:.4f}'} ({report['status']})")
    for row in report["characteristics"]:
        out.print(f"  {row['characteristic']:<50} {row['psi']:.4f} {row['status']}")
