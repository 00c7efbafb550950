"""The command line end to end: JSON outputs, refusals with clear messages and exit codes."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lendsafe.entrypoints.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def _database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LENDSAFE_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.sqlite'}")


def run(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, (result.stdout, result.stderr)
    return result.stdout if code == 0 else result.stderr


def test_quote_single_period_with_deducted_fee() -> None:
    document = json.loads(run("quote", "--type", "bullet", "--principal", "1000.00",
                              "--annual-rate", "0.18", "--term", "14d", "--start", "2026-03-01",
                              "--fee", "20.00", "--fee-mode", "deducted", "--json"))
    assert document["annual_rate_disclosed"] == "0.7156"
    assert document["total_repayable"] == "1006.90"
    assert document["total_cost"] == "26.90"
    assert document["installments"] == [{"seq": 1, "due_date": "2026-03-15",
                                         "principal": "1000.00", "interest": "6.90",
                                         "fees": "0.00", "total": "1006.90"}]
    assert Decimal(document["annual_rate_compound"]) > Decimal(document["annual_rate_disclosed"])


def test_quote_annuity_monthly() -> None:
    document = json.loads(run("quote", "--type", "annuity", "--principal", "100000.00",
                              "--annual-rate", "0.049", "--term", "120m", "--start",
                              "2026-03-01", "--day-count", "30/360", "--json"))
    assert document["installments"][0]["total"] == "1055.77"
    assert len(document["installments"]) == 120
    assert document["annual_rate_disclosed"] == "0.0490"


def test_quote_refused_by_the_cap_names_rule_and_figures() -> None:
    message = run("quote", "--type", "bullet", "--principal", "1000.00", "--annual-rate",
                  "0.18", "--term", "14d", "--start", "2026-03-01", "--fee", "20.00",
                  "--fee-mode", "financed", "--jurisdiction", "CN", "--json", code=2)
    assert "CN.annual_cost_cap" in message and "24.00%" in message
    deducted = run("quote", "--type", "bullet", "--principal", "1000.00", "--term", "14d",
                   "--start", "2026-03-01", "--fee", "20.00", "--fee-mode", "deducted",
                   "--jurisdiction", "CN", code=2)
    assert "CN.fee_deduction" in deducted


@pytest.mark.parametrize(("args", "fragment"), [
    (["--principal", "-5.00"], "positive"),
    (["--principal", "0"], "positive"),
    (["--principal", "abc"], "not a decimal"),
    (["--principal", "10.001"], "decimal places"),
    (["--term", "14x"], "term"),
    (["--annual-rate", "lots"], "annual rate"),
    (["--type", "balloon"], "balloon"),
])
def test_quote_bad_input(args: list[str], fragment: str) -> None:
    base = {"--principal": "1000.00", "--term": "14d", "--start": "2026-03-01",
            "--type": "bullet", "--annual-rate": "0.18"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    message = run("quote", *[x for kv in base.items() for x in kv], code=2)
    assert fragment in message


def test_apr_command(tmp_path: Path) -> None:
    flows = tmp_path / "flows.json"
    flows.write_text(json.dumps([{"date": "2026-03-01", "amount": "-980.00"},
                                 {"date": "2026-03-15", "amount": "1006.90"}]))
    document = json.loads(run("apr", "--cashflows", str(flows), "--json"))
    assert document["annual_rate"] == "0.715634"
    flows.write_text("{not json")
    assert "not valid JSON" in run("apr", "--cashflows", str(flows), code=2)
    flows.write_text(json.dumps([{"date": "2026-03-01", "amount": "-980.00"}]))
    assert "error" in run("apr", "--cashflows", str(flows), code=2)


def test_products_status_book_pay_eod_flow() -> None:
    products = json.loads(run("products", "--json"))
    assert {"id", "type"} <= set(products[0]) and any(p["type"] == "bullet" for p in products)
    run("init", "--date", "2026-03-02")
    loan = json.loads(run("book", "--borrower", "u1", "--product", "cn-bullet", "--amount",
                          "1000.00", "--term", "14d", "--json"))
    closed = json.loads(run("eod", "--date", "2026-03-16", "--json"))
    assert closed["open_business_date"] == "2026-03-17" and len(closed["closed"]) == 15
    again = json.loads(run("eod", "--date", "2026-03-16", "--json"))
    assert again["closed"] == []  # running the same date twice changes nothing
    payment = json.loads(run("pay", str(loan["loan_id"]), "--amount", "1006.90", "--key",
                             "abcdefgh", "--json"))
    assert payment["loan_status"] == "closed"
    status = json.loads(run("status", "--json"))
    assert status["business_date"] == "2026-03-17"
    assert status["trial_balance"]["balanced"] is True


def test_cli_refusals_write_nothing() -> None:
    run("init", "--date", "2026-03-02")
    assert "unknown product" in run("book", "--borrower", "u1", "--product", "nope",
                                    "--amount", "100.00", "--term", "14d", code=2)
    assert "outside" in run("book", "--borrower", "u1", "--product", "cn-bullet",
                            "--amount", "99999.00", "--term", "14d", code=2)
    assert "does not exist" in run("pay", "42", "--amount", "1.00", "--key", "abcdefgh",
                                   code=2)
    status = json.loads(run("status", "--json"))
    assert status["loans"] == [] and status["journal_entries"] == 0
