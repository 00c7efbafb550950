"""Decisions end to end: service, log, referrals, champion/challenger, promotion, monitoring,
bad input (nothing stored), API and CLI, and the faithfulness of reason codes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from lendsafe.adapters.db import decision_tables as dt
from lendsafe.adapters.ml.artifact import ScoringModel, from_bytes
from lendsafe.adapters.ml.registry import ModelRegistry
from lendsafe.adapters.ml.training import train_file
from lendsafe.bootstrap import Container, build
from lendsafe.config import Settings
from lendsafe.domain.lending.product import parse_term
from lendsafe.domain.scoring.scorecard import Kind
from lendsafe.services.access import Principal, create_api_key
from lendsafe.services.decision_control import monitor, promotion_payload
from lendsafe.services.decision_models import ModelBook, challenger_bucket

GERMAN = Path(__file__).parents[2] / "src" / "lendsafe" / "data" / "credit" / "german_credit.csv.gz"
GOOD = {"status_of_existing_checking_account": "no checking account",
        "credit_history": "critical account/ other credits existing (not at this bank)",
        "purpose": "car (used)", "credit_amount": 2000, "savings_account_and_bonds":
        "... >= 1000 DM", "present_employment_since": "... >= 7 years",
        "installment_rate_in_percentage_of_disposable_income": 2,
        "other_debtors_or_guarantors": "none", "property": "real estate",
        "other_installment_plans": "none", "housing": "own"}


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelRegistry]:
    folder = tmp_path_factory.mktemp("models")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LENDSAFE_MODELS_DIR", str(folder))
        registry = ModelRegistry(folder)
        ModelBook(registry).builtin_model_id()  # the built-in scorecard, trained once
        gbm = train_file(GERMAN, "creditability", "gbm", None, "2026-01-02")
        registry.register(gbm.artifact, gbm.kind, gbm.metadata)
        yield registry


def model_of(registry: ModelRegistry, kind: str) -> tuple[str, ScoringModel]:
    entry = next(e for e in registry.entries() if e["kind"] == kind)
    return entry["model_id"], from_bytes(registry.load(entry["model_id"])[0])


@pytest.fixture
def container(registry: ModelRegistry, database_url: str, tmp_path: Path) -> Iterator[Container]:
    settings = Settings.from_env({"LENDSAFE_DATABASE_URL": database_url,
                                  "LENDSAFE_DATA_DIR": str(tmp_path)})
    container = build(settings)
    container.lending.initialise(date(2026, 3, 2))
    yield container
    container.engine.dispose()


def application(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "applicant": {"age": 35, "monthly_income": "9000.00", "monthly_obligations": "500.00",
                      "employment": "employed", "region": "CN-31", "borrower": "alice"},
        "requested": {"product": "cn-bullet", "amount": "2000.00", "term": "30d"},
        "characteristics": dict(GOOD)}
    for path, value in changes.items():
        section, _, key = path.partition("__")
        if key:
            document[section][key] = value
        else:
            document[section] = value
    return document


def counts(container: Container) -> tuple[int, int, int]:
    with container.engine.connect() as connection:
        return tuple(connection.execute(select(func.count()).select_from(table)).scalar_one()
                     for table in (dt.applications, dt.decision_log, dt.referrals))  # type: ignore[return-value]


def test_approve_is_logged_with_versions_and_hash(container: Container) -> None:
    result = container.decisions.decide(application(), actor="test")
    assert result["decision"] == "approve", result["reasons"]
    assert result["limit"] >= "2000.00" and result["annual_rate_offered"] is not None
    assert {p["product"] for p in result["products"]} == set(container.catalogue.products)
    with container.engine.connect() as connection:
        row = connection.execute(select(dt.decision_log)).one()
    assert row.decision == "approve" and row.model_version == result["model_version"]
    assert row.policy_version == result["policy_version"] and len(row.inputs_sha256) == 64
    assert json.loads(row.characteristics)["age_in_years"] == 35


def test_identity_is_stored_only_as_hashes(container: Container) -> None:
    container.decisions.block("national_id", "110101199001011234", "fraud ring")
    document = application(applicant__national_id="110101199001011234",
                           applicant__phone="+86 138 0000 0000")
    result = container.decisions.decide(document)
    assert result["decision"] == "decline"
    assert "blocklist.match" in [r["code"] for r in result["reasons"]]
    with container.engine.connect() as connection:
        stored = connection.execute(select(dt.applications.c.inputs)).scalar_one()
    assert "110101199001011234" not in stored and "13800000000" not in stored


@pytest.mark.parametrize(("changes", "field"), [
    ({"applicant__age": 500}, "applicant.age"),
    ({"applicant__age": "thirty"}, "applicant.age"),
    ({"applicant__monthly_income": "-10.00"}, "applicant.monthly_income"),
    ({"applicant__monthly_income": 8000.5}, "applicant.monthly_income"),
    ({"applicant__employment": "astronaut"}, "applicant.employment"),
    ({"requested__product": "no-such-loan"}, "requested.product"),
    ({"requested__amount": "1000.001"}, "requested.amount"),
    ({"requested__term": "fortnight"}, "requested.term"),
    ({"requested": {"product": "cn-bullet", "amount": "100.00"}}, "requested.term"),
    ({"characteristics": {"credit_amount": "lots"}}, "characteristics.credit_amount"),
    ({"surprise": 1}, "surprise"),
])
def test_bad_input_names_the_field_and_stores_nothing(container: Container,
                                                      changes: dict[str, Any],
                                                      field: str) -> None:
    from lendsafe.domain.problems import Refused

    with pytest.raises(Refused) as refused:
        container.decisions.decide(application(**changes))
    assert field in [p.field for p in refused.value.problems], refused.value
    assert counts(container) == (0, 0, 0)


def test_refer_goes_to_the_queue_and_an_underwriter_decides(container: Container) -> None:
    result = container.decisions.decide(application(applicant__employment="student"))
    assert result["decision"] == "refer" and result["referral_id"] is not None
    queue = container.decisions.referrals()
    assert [r["application_id"] for r in queue] == [result["application_id"]]
    decided = container.decisions.decide_referral(result["referral_id"], True, "payslip seen",
                                                  "key:underwriter")
    assert decided["status"] == "approved" and container.decisions.referrals() == []
    with container.engine.connect() as connection:
        log = connection.execute(select(dt.decision_log.c.decision, dt.decision_log.c.decided_by)
                                 .order_by(dt.decision_log.c.id)).all()
    assert [tuple(r) for r in log] == [("refer", "champion"),
                                       ("approve", "underwriter:key:underwriter")]


def test_champion_challenger_split_and_promotion(container: Container,
                                                 registry: ModelRegistry) -> None:
    gbm_id, _ = model_of(registry, "gbm")
    security = container.security
    maker = Principal(subject="user:maker", role="underwriter")
    checker = Principal(subject="user:checker", role="risk_officer")
    payload = promotion_payload(container.decisions.models, gbm_id, "challenger")
    action = security.propose(maker, "model.promote", f"model:{gbm_id}", payload, "trial")
    with container.engine.connect() as connection:
        assert "challenger" not in container.decisions.models.roles(connection)
    with pytest.raises(PermissionError):
        security.decide(maker, action["id"] if "id" in action else action["action_id"], True)
    security.decide(checker, action.get("id", action.get("action_id")), True, "ok")
    ids = [f"app-{i:05d}" for i in range(40)]
    results = [container.decisions.decide(application(application_id=i)) for i in ids]
    share = float(container.decisions.policy.rate("challenger_share"))
    for i, result in zip(ids, results, strict=True):
        expected = "challenger" if challenger_bucket(i) < share else "champion"
        assert result["decided_by"] == expected
        assert result["challenger"]["model_version"] == gbm_id
    with container.engine.connect() as connection:
        logged = connection.execute(select(func.count()).where(
            dt.decision_log.c.challenger_score.is_not(None))).scalar_one()
    assert logged == len(ids)


def test_monitor_flags_a_shifted_population(container: Container,
                                            registry: ModelRegistry) -> None:
    frame = pd.read_csv(GERMAN).drop(columns="creditability")
    sample = frame.sample(80, random_state=1)
    for n, (_, row) in enumerate(sample.iterrows()):
        characteristics = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        container.decisions.decide(application(application_id=f"mon-{n:05d}",
                                               characteristics=characteristics))
    champion = container.decisions.models.ensure_champion(container.engine, lambda: None)
    steady = monitor(container.engine, container.decisions.models, champion, None)
    assert steady["applications"] == 80 and steady["score_psi"] < 0.25
    for n in range(80):
        container.decisions.decide(application(application_id=f"shift-{n:05d}",
                                               characteristics={}))
    shifted = monitor(container.engine, container.decisions.models, champion, None)
    assert shifted["status"] == "unstable" and shifted["score_psi"] >= 0.25
    assert any(c["status"] == "unstable" for c in shifted["characteristics"])


def test_api_decides_and_refuses_bad_input(container: Container) -> None:
    client = TestClient(create_app(container))
    borrower_app = {"Authorization": f"Bearer {create_api_key(container.engine, 'integration')}"}
    ok = client.post("/applications", headers=borrower_app, json=application())
    assert ok.status_code == 200 and ok.json()["decision"] == "approve"
    bad = client.post("/applications", headers=borrower_app,
                      json=application(applicant__age=500))
    assert bad.status_code == 422
    assert [p["field"] for p in bad.json()["detail"]] == ["applicant.age"]
    assert client.get("/referrals", headers=borrower_app).status_code == 403
    staff = {"Authorization": f"Bearer {create_api_key(container.engine, 'underwriter')}"}
    assert client.get("/referrals", headers=staff).json() == []
    assert client.post("/applications", json=application()).status_code == 401


def create_app(container: Container) -> Any:
    from lendsafe.entrypoints.api.app import create_app as make

    return make(container)


def test_cli_decide(container: Container, tmp_path: Path, database_url: str,
                    monkeypatch: pytest.MonkeyPatch) -> None:
    from lendsafe.entrypoints.cli import app

    monkeypatch.setenv("LENDSAFE_DATABASE_URL", database_url)
    monkeypatch.setenv("LENDSAFE_DATA_DIR", str(tmp_path))
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(application()))
    bad.write_text(json.dumps(application(requested__product="nope")))
    runner = CliRunner()
    result = runner.invoke(app, ["decide", "--file", str(good), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["decision"] == "approve"
    refused = runner.invoke(app, ["decide", "--file", str(bad), "--json"])
    assert refused.exit_code == 2 and "requested.product" in refused.output


# -- reason codes are faithful -------------------------------------------------------------

def _best_value(model: ScoringModel, name: str) -> object:
    """A raw value that falls in the characteristic's highest-points bin."""
    assert model.scorecard is not None
    c = next(c for c in model.scorecard.characteristics if c.name == name)
    best = max(range(len(c.bins)), key=lambda i: c.bins[i].points)
    if c.kind is Kind.CATEGORICAL:
        return c.categories[c.category_bins.index(best)]
    return c.edges[best - 1] if best > 0 else c.edges[0] - 1.0


def test_scorecard_top_reason_is_faithful(registry: ModelRegistry) -> None:
    model_id = next(e["model_id"] for e in registry.entries() if e.get("builtin"))
    book = ModelBook(registry)
    model = book.load(model_id)
    frame = pd.read_csv(GERMAN).drop(columns="creditability").head(200)
    checked = 0
    for _, raw in frame.iterrows():
        row = raw.to_dict()
        before = book.score(model_id, row)
        if not before.reasons:
            continue
        name = before.reasons[0][0]
        c = next(c for c in model.scorecard.characteristics if c.name == name)  # type: ignore[union-attr]
        lost = c.max_points - model.scorecard.score_one(row).points[name]  # type: ignore[union-attr]
        after = book.score(model_id, {**row, name: _best_value(model, name)})
        assert after.score - before.score == pytest.approx(lost, abs=1e-9)
        assert after.score > before.score and after.pd < before.pd
        checked += 1
    assert checked > 150


def test_gbm_top_reason_is_faithful(registry: ModelRegistry) -> None:
    model_id, model = model_of(registry, "gbm")
    gbm = model.gbm
    assert gbm is not None
    frame = pd.read_csv(GERMAN).drop(columns="creditability")
    contributions = gbm.contributions(gbm.matrix(frame))
    margins = gbm.margin(gbm.matrix(frame))
    assert np.allclose(contributions.sum(axis=1), margins)  # SHAP adds up to the margin
    book = ModelBook(registry)
    moved, total = 0, 0
    for index in range(300):
        row = frame.iloc[index].to_dict()
        before = book.score(model_id, row)
        if not before.reasons:
            continue
        name = before.reasons[0][0]
        j = gbm.features.index(name)
        # the training value with the most favourable contribution of that feature
        best = frame[name].iloc[int(np.argmin(contributions[:, j]))]
        after = book.score(model_id, {**row, name: best})
        total += 1
        moved += after.pd < before.pd
    assert total > 200 and moved / total >= 0.95, (moved, total)


def test_a_change_approved_in_another_process_reaches_a_running_decision_server(
        container: Container, database_url: str, tmp_path: Path) -> None:
    """A decision server keeps the catalogue in memory (primed at start-up); a product or
    jurisdiction change approved by another process is in force for its next decision."""
    server = container.decisions
    assert server.prime() > 0
    before = server.decide(application(), actor="test")
    assert before["decision"] == "approve", before["reasons"]
    settings = Settings.from_env({"LENDSAFE_DATABASE_URL": database_url,
                                  "LENDSAFE_DATA_DIR": str(tmp_path / "other")})
    other = build(settings)  # the process where the change is approved
    try:
        with other.engine.begin() as connection:
            other.lending.change_product(connection, "cn-bullet", {"annual_rate": "0.12"})
        cheaper = server.decide(application(), actor="test")
        assert Decimal(cheaper["annual_rate_offered"]) < Decimal(before["annual_rate_offered"])
        with other.engine.begin() as connection:
            other.lending.change_jurisdiction(connection, "CN", {"annual_cost_cap": "0.05"})
    finally:
        other.engine.dispose()
    capped = server.decide(application(), actor="test")
    assert capped["decision"] != "approve"
    bullet = next(p for p in capped["products"] if p["product"] == "cn-bullet")
    assert not bullet["available"]
    assert any("cap" in r["code"] for r in bullet["reasons"]), bullet["reasons"]
    assert str(container.catalogue.jurisdictions["CN"].annual_cost_cap) == "0.05"


def test_a_booking_keeps_the_decisions_priced_catalogue(container: Container) -> None:
    """Booking re-reads the product and jurisdiction in force; when nothing changed the
    catalogue keeps the same objects, so the decisions' pricing caches (keyed on them)
    survive every booking in a process that both books and decides."""
    server = container.decisions
    server.decide(application(), actor="test")
    rules, product = (container.catalogue.jurisdictions["CN"],
                      container.catalogue.products["cn-bullet"])
    priced = len(server.pricing.facts.items)
    assert priced > 0
    container.lending.book("bob", "cn-bullet", 200_000, parse_term("14d"))
    assert container.catalogue.jurisdictions["CN"] is rules
    assert container.catalogue.products["cn-bullet"] is product
    server.decide(application(), actor="test")
    assert len(server.pricing.facts.items) >= priced  # not cleared by the booking
