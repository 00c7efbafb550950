"""Flexible repayment end to end: plans through the CLI and the API, a borrower's hardship
request, a staff preview and a maker-checker restructuring, relief through the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from lendsafe.adapters.db import control_tables as ct
from lendsafe.adapters.db import restructure_tables as rt
from lendsafe.bootstrap import Container, build
from lendsafe.config import Settings
from lendsafe.entrypoints.api.app import create_app
from lendsafe.entrypoints.cli import app as cli_app
from lendsafe.services.access import authenticate, create_api_key


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"LENDSAFE_DATABASE_URL": f"sqlite:///{tmp_path / 'e2e.db'}",
            "LENDSAFE_DATA_DIR": str(tmp_path)}


@pytest.fixture
def container(env: dict[str, str]) -> Iterator[Container]:
    container = build(Settings.from_env(env))
    container.lending.initialise(date(2026, 3, 2))
    yield container
    container.engine.dispose()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_plans_cli_json_and_empty_answer_with_reason(env: dict[str, str],
                                                     container: Container) -> None:
    runner = CliRunner()
    result = runner.invoke(cli_app, ["plans", "--income", "8000.00", "--obligations", "1000.00",
                                     "--amount", "3000.00", "--json"], env=env)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["plans"] and document["rule"]["payment_to_income_max"] == "0.30"
    first = document["plans"][0]
    assert set(first) >= {"product", "term", "installment_max", "annual_rate_disclosed",
                          "total_cost"}
    costs = [float(p["total_cost"]) for p in document["plans"]]
    assert costs == sorted(costs)
    none = runner.invoke(cli_app, ["plans", "--income", "1000.00", "--obligations", "480.00",
                                   "--amount", "3000.00", "--json"], env=env)
    empty = json.loads(none.stdout)
    assert empty["plans"] == [] and "debt-service" in empty["reason"]


def test_hardship_request_preview_and_maker_checker(container: Container) -> None:
    client = TestClient(create_app(container))
    staff_key = create_api_key(container.engine, "operations")
    loan = client.post("/loans", headers=bearer(staff_key), json={
        "borrower": "alice", "product": "cn-annuity", "amount": "6000.00", "term": "6m"})
    loan_id = loan.json()["loan_id"]
    alice = bearer(create_api_key(container.engine, "borrower", "alice"))
    plans = client.post("/plans", headers=alice, json={"income": "8000.00",
                                                       "obligations": "1000.00",
                                                       "amount": "3000.00"})
    assert plans.status_code == 200 and plans.json()["plans"]
    asked = client.post(f"/loans/{loan_id}/hardship", headers=alice,
                        json={"reason": "lost my job"})
    assert asked.status_code == 201
    listed = client.get("/hardship-requests", headers=bearer(staff_key)).json()
    assert [r["loan_id"] for r in listed] == [loan_id]
    body = {"kind": "deferral", "count": 2, "reason": "hardship request"}
    preview = client.post(f"/loans/{loan_id}/restructure/preview", headers=bearer(staff_key),
                          json=body)
    assert preview.status_code == 200, preview.text
    assert preview.json()["needs_approval"] is True
    assert len(preview.json()["after"]["schedule"]) == 8
    submitted = client.post(f"/loans/{loan_id}/restructure", headers=bearer(staff_key), json=body)
    assert submitted.status_code == 201 and submitted.json()["status"] == "pending_approval"
    action_id = submitted.json()["action"]["id"]
    checker = authenticate(container.engine, create_api_key(container.engine, "risk_officer"))
    decided = container.security.decide(checker, action_id, True, "ok")
    assert decided["status"] == "approved"
    view = client.get(f"/loans/{loan_id}", headers=alice).json()
    assert len(view["installments"]) == 8
    with container.engine.connect() as connection:
        assert connection.execute(select(rt.restructures.c.status)).scalars().all() == ["applied"]
        actions = set(connection.execute(select(ct.audit_records.c.action)).scalars())
    assert {"loan.restructure", "loan.hardship_request", "control.approved"} <= actions
    bad = client.post(f"/loans/{loan_id}/restructure/preview", headers=bearer(staff_key),
                      json={"kind": "re-ageing", "count": 3})
    assert bad.status_code == 422 and bad.json()["detail"][0]["code"].startswith(
        "restructure.re-ageing")


def test_relief_through_the_cli(env: dict[str, str], container: Container,
                                tmp_path: Path) -> None:
    container.lending.book("bob", "cn-annuity", 600_000, __import__(
        "lendsafe.domain.lending.product", fromlist=["Term"]).Term(
        6, __import__("lendsafe.domain.lending.product", fromlist=["TermUnit"]).TermUnit.MONTHS),
        region="GD")
    event = tmp_path / "event.toml"
    event.write_text('name = "storm"\nregions = ["GD"]\nstarts_on = 2026-03-01\n'
                     'ends_on = 2026-04-30\n[offer]\ndeferral_days = 30\n', "utf-8")
    runner = CliRunner()
    declared = runner.invoke(cli_app, ["relief", "declare", "--file", str(event), "--json"],
                             env=env)
    assert declared.exit_code == 0, declared.output
    event_id = json.loads(declared.stdout)["event_id"]
    again = runner.invoke(cli_app, ["relief", "declare", "--file", str(event)], env=env)
    assert again.exit_code == 2 and "relief.overlap" in again.output
    applied = runner.invoke(cli_app, ["relief", "apply", str(event_id), "--json"], env=env)
    assert json.loads(applied.stdout)["loans_covered"] == 1
    report = runner.invoke(cli_app, ["relief", "report", str(event_id), "--json"], env=env)
    assert json.loads(report.stdout)["uptake"]["covered"] == 1
    preview = runner.invoke(cli_app, ["restructure", "1", "--kind", "extension", "--count", "2",
                                      "--preview", "--json"], env=env)
    assert preview.exit_code == 0, preview.output
    assert len(json.loads(preview.stdout)["after"]["schedule"]) == 8
