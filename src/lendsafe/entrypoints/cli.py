"""The ``lendsafe`` command line (Typer + Rich). ``--json`` output is for programs."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from lendsafe.domain.calendar import DayCount, Frequency
from lendsafe.domain.lending.apr import AprError, CashFlow, Method, UnitPeriod, annual_rate
from lendsafe.domain.lending.product import FeeMode, LoanType, RateBasis, parse_term
from lendsafe.domain.lending.quote import checked_quote
from lendsafe.domain.lending.schedule import LoanTerms
from lendsafe.domain.money import MoneyError, currency, format_rate, parse_amount, parse_rate
from lendsafe.domain.problems import Refused
from lendsafe.entrypoints.cli_audit import audit_app
from lendsafe.entrypoints.cli_decide import decide as decide_command
from lendsafe.entrypoints.cli_ledger import ledger_app
from lendsafe.entrypoints.cli_remind import remind_app
from lendsafe.entrypoints.cli_repay import mount as mount_repayment
from lendsafe.entrypoints.cli_users import users_app

app = typer.Typer(help="lendsafe: a micro-lending platform that keeps loans from going bad.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
console = Console()
errors = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for programs.")]


def _container() -> Any:
    from lendsafe.bootstrap import build

    return build()


def _emit(document: Any, as_json: bool, render: Callable[[Any], None] | None = None) -> None:
    if as_json or render is None:
        sys.stdout.write(json.dumps(document, ensure_ascii=False, indent=2, default=str) + "\n")
    else:
        render(document)


def _fail(message: str, problems: list[dict[str, Any]] | None = None, code: int = 2) -> None:
    errors.print(f"[bold red]error:[/] {message}")
    for problem in problems or []:
        errors.print(f"  - [{problem['code']}] {problem['message']}")
    raise typer.Exit(code)


def guarded(action: Callable[[], T]) -> T:
    """Run ``action``, turning refusals and bad input into clear errors with exit code 2."""
    from lendsafe.services.lending import Conflict, NotFound

    try:
        return action()
    except Refused as refused:
        _fail("refused", [p.as_dict() for p in refused.problems])
    except (MoneyError, AprError, NotFound, Conflict, ValueError) as error:
        _fail(str(error))
    raise AssertionError("unreachable")


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO date such as 2026-03-01") from None


@app.command()
def init(on: Annotated[str, typer.Option("--date", help="First open business date.")]) -> None:
    """Create the schema, register the products and set the first business date."""
    container = _container()
    guarded(lambda: container.lending.initialise(_parse_date(on)))
    console.print(f"initialised; open business date {container.lending.open_date()}")


@app.command()
def products(as_json: JsonOption = False) -> None:
    """List the products on offer (as in force: changes approved since the catalogue file
    was loaded included)."""
    document = _container().lending.product_listing()

    def render(rows: list[dict[str, Any]]) -> None:
        table = Table("id", "type", "name", "rate", "term")
        for r in rows:
            table.add_row(r["id"], r["type"], r["name"], r["annual_rate"],
                          f"{r['term_min']}–{r['term_max']}")
        console.print(table)

    _emit(document, as_json, render)


@app.command()
def quote(
    principal: Annotated[str, typer.Option(help="Amount asked for, e.g. 1000.00.")],
    term: Annotated[str, typer.Option(help="14d, 8w or 12m.")],
    start: Annotated[str, typer.Option(help="Disbursement date (ISO).")],
    loan_type: Annotated[str, typer.Option("--type", help="bullet|annuity|equal-principal|"
                                                          "interest-only")] = "bullet",
    annual_rate: Annotated[str, typer.Option("--annual-rate", help="e.g. 0.18")] = "0.18",
    frequency: Annotated[str, typer.Option(help="monthly|biweekly|weekly")] = "monthly",
    fee: Annotated[str, typer.Option(help="Up-front service fee, e.g. 20.00")] = "0",
    fee_mode: Annotated[str, typer.Option("--fee-mode", help="deducted|financed")] = "financed",
    day_count: Annotated[str, typer.Option("--day-count", help="act/365f|act/360|30/360")] = (
        "act/365f"),
    rate_basis: Annotated[str, typer.Option("--rate-basis", help="annual|term")] = "annual",
    currency_code: Annotated[str, typer.Option("--currency")] = "CNY",
    jurisdiction: Annotated[str, typer.Option(help="CN, US or NONE")] = "NONE",
    as_json: JsonOption = False,
) -> None:
    """Price a loan: schedule, disclosed annualised rate (IRR), total cost and repayable."""
    from lendsafe.services.catalogue import Catalogue
    from lendsafe.services.lending import quote_document

    def build() -> dict[str, Any]:
        cur = currency(currency_code)
        kind = LoanType(loan_type)
        terms = LoanTerms(
            type=kind, currency=cur, amount_minor=parse_amount(principal, cur),
            annual_rate=parse_rate(annual_rate, name="annual rate"), start=_parse_date(start),
            term=parse_term(term), frequency=None if kind is LoanType.BULLET else Frequency(
                frequency), day_count=DayCount(day_count), rate_basis=RateBasis(rate_basis),
            service_fee_minor=parse_amount(fee, cur), fee_mode=FeeMode(fee_mode),
        )
        if terms.amount_minor <= 0:
            raise ValueError("--principal must be positive")
        rules = Catalogue.load().jurisdictions.get(jurisdiction.upper())
        if rules is None:
            raise ValueError(f"unknown jurisdiction {jurisdiction!r}; use CN, US or NONE")
        return quote_document(checked_quote(terms, rules))

    document = guarded(build)
    _emit(document, as_json, _render_quote)


def _render_quote(document: dict[str, Any]) -> None:
    table = Table("#", "due date", "principal", "interest", "fees", "total")
    for row in document["installments"]:
        table.add_row(str(row["seq"]), row["due_date"], row["principal"], row["interest"],
                      row["fees"], row["total"])
    console.print(table)
    console.print(
        f"paid out {document['disbursed']} · total repayable {document['total_repayable']} · "
        f"total cost {document['total_cost']}\n[bold]annualised rate (IRR, simple 单利): "
        f"{Decimal(document['annual_rate_disclosed']) * 100:.2f}%[/] · compound (复利): "
        f"{Decimal(document['annual_rate_compound']) * 100:.2f}%"
    )


@app.command()
def apr(
    cashflows: Annotated[Path, typer.Option("--cashflows", help="JSON list of {date, amount}.")],
    method: Annotated[str, typer.Option(help="reg-z|irr|irr-compound")] = "reg-z",
    unit_period: Annotated[str | None, typer.Option("--unit-period", help=(
        "month|semimonth|quarter|week|2week|4week|2month|day (inferred if omitted)"))] = None,
    currency_code: Annotated[str, typer.Option("--currency")] = "USD",
    as_json: JsonOption = False,
) -> None:
    """The disclosed annualised rate of any dated cash-flow stream (advances negative)."""

    def build() -> dict[str, Any]:
        cur = currency(currency_code)
        flows = [CashFlow(_parse_date(str(item["date"])), parse_amount(str(item["amount"]), cur))
                 for item in _read_json_list(cashflows)]
        unit = UnitPeriod(unit_period) if unit_period else None
        result = annual_rate(flows, Method(method), unit)
        return {
            "annual_rate": format_rate(result.annual_rate, 6),
            "annual_rate_nominal": format_rate(result.annual_rate_nominal, 6),
            "annual_rate_compound": format_rate(result.annual_rate_compound, 6),
            "periodic_rate": str(result.periodic_rate), "method": result.method.value,
            "unit_period": result.unit_period.value,
            "periods_per_year": result.periods_per_year,
        }

    document = guarded(build)
    _emit(document, as_json, lambda d: console.print(
        f"annual rate {Decimal(d['annual_rate']) * 100:.4f}% ({d['method']}, unit period "
        f"{d['unit_period']})"))


def _read_json_list(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path} does not exist") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(data, list) or not all(
        isinstance(i, dict) and "date" in i and "amount" in i for i in data
    ):
        raise ValueError(f"{path} must hold a JSON list of {{\"date\", \"amount\"}} objects")
    return data


@app.command()
def book(
    borrower: Annotated[str, typer.Option(help="Borrower reference.")],
    product: Annotated[str, typer.Option(help="Product id (see `lendsafe products`).")],
    amount: Annotated[str, typer.Option(help="e.g. 1000.00")],
    term: Annotated[str, typer.Option(help="14d, 8w or 12m")],
    application: Annotated[str | None, typer.Option(
        help="The approved credit application this loan draws on (see `lendsafe decide`).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Book and disburse a loan on the open business date."""
    container = _container()

    def run() -> dict[str, Any]:
        chosen = container.catalogue.product(product)
        loan_id = container.lending.book(borrower, product, parse_amount(amount, chosen.currency),
                                         parse_term(term), application_id=application)
        return container.lending.loan_view(loan_id)  # type: ignore[no-any-return]

    _emit(guarded(run), as_json, lambda d: console.print(
        f"booked loan {d['loan_id']}: {d['principal']} {d['currency']}, disclosed rate "
        f"{d['annual_rate_disclosed']}, maturity {d['maturity_date']}"))


@app.command()
def pay(
    loan_id: int,
    amount: Annotated[str, typer.Option(help="e.g. 500.00")],
    key: Annotated[str, typer.Option("--key", help="Idempotency key (a retry reuses it).")],
    as_json: JsonOption = False,
) -> None:
    """Post a payment on the open business date (once per idempotency key)."""
    container = _container()

    def run() -> dict[str, Any]:
        record = container.lending.loan_view(loan_id)
        minor = parse_amount(amount, currency(record["currency"]))
        return container.lending.pay(loan_id, minor, key)  # type: ignore[no-any-return]

    _emit(guarded(run), as_json, lambda d: console.print(d))


@app.command()
def payoff(
    loan_id: int,
    on: Annotated[str | None, typer.Option("--date", help="Payoff date (default: today).")] = None,
    as_json: JsonOption = False,
) -> None:
    """What repays a loan in full on a date (the open business date or later)."""
    container = _container()
    when = _parse_date(on) if on else None
    _emit(guarded(lambda: container.lending.payoff(loan_id, when)), as_json,
          lambda d: console.print(d))


@app.command()
def loan(loan_id: int, as_json: JsonOption = False) -> None:
    """A loan's statement: balances, schedule, payments due."""
    container = _container()
    document = guarded(lambda: container.lending.loan_view(loan_id))

    def render(d: dict[str, Any]) -> None:
        console.print(f"loan {d['loan_id']} · {d['product']} · {d['status']} · "
                      f"{d['days_past_due']} days past due ({d['bucket']})")
        table = Table("#", "due date", "principal", "interest", "fees", "total", "paid")
        for row in d["installments"]:
            table.add_row(str(row["seq"]), row["due_date"], row["principal"], row["interest"],
                          row["fees"], row["total"], row["paid"])
        console.print(table)
        console.print(f"balances: {d['balances']}")

    _emit(document, as_json, render)


@app.command()
def eod(
    on: Annotated[str, typer.Option("--date", help="Close business through this date.")],
    as_json: JsonOption = False,
) -> None:
    """Close of business for all loans through a date (skipped dates caught up in order)."""
    from rich.progress import Progress

    container = _container()
    target = _parse_date(on)

    def run() -> list[dict[str, Any]]:
        with Progress(console=errors, transient=True, disable=as_json) as bar:
            task = bar.add_task("close of business", total=None)
            summaries = container.lending.close_business(
                target, progress=lambda n: bar.advance(task, n))
        return [{"business_date": s.business_date.isoformat(), "loans": s.loans,
                 "journal_entries": s.journal_entries} for s in summaries]

    document = guarded(run)
    _emit({"closed": document, "open_business_date": container.lending.open_date().isoformat()},
          as_json, lambda d: console.print(
              f"closed {len(d['closed'])} business date(s); open business date "
              f"{d['open_business_date']}"))


@app.command()
def status(as_json: JsonOption = False) -> None:
    """Business date, loans by status and bucket, and the journal's trial balance."""
    container = _container()
    document = guarded(container.lending.status)

    def render(d: dict[str, Any]) -> None:
        table = Table("status", "bucket", "currency", "loans", "principal outstanding")
        for row in d["loans"]:
            table.add_row(row["status"], row["bucket"], row["currency"], str(row["count"]),
                          row["principal_outstanding"])
        console.print(f"open business date {d['business_date']}")
        console.print(table)
        tb = d["trial_balance"]
        for row in tb["by_currency"]:
            console.print(f"trial balance {row['currency']}: debits {row['debits']} credits "
                          f"{row['credits']} balanced={row['balanced']}")
        console.print(f"{d['journal_entries']} journal entries")

    _emit(document, as_json, render)


@app.command()
def serve(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Start the HTTP API (OpenAPI docs at /docs)."""
    import uvicorn

    uvicorn.run("lendsafe.entrypoints.api.app:create_app", factory=True, host=host, port=port)


@app.command()
def demo(
    loans: Annotated[int, typer.Option(help="Loans to book.")] = 3000,
    days: Annotated[int, typer.Option(help="Business days to simulate.")] = 120,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
    as_json: JsonOption = False,
) -> None:
    """Book synthetic loans, run close of business with payments, print a portfolio report."""
    from lendsafe.entrypoints.demo import run_demo

    container = _container()
    report = guarded(lambda: run_demo(container, loans=loans, days=days, seed=seed,
                                      quiet=as_json))
    _emit(report, as_json, lambda d: None)


def _mount_optional() -> None:
    try:
        from lendsafe.entrypoints.cli_model import model_app
    except ImportError:  # the model tools need the ML extras
        return
    app.add_typer(model_app, name="model", help="Train, evaluate and register credit models.")


_mount_optional()
app.add_typer(ledger_app, name="ledger", help="Tamper-evident ledger: verify, heads, proofs.")
app.add_typer(audit_app, name="audit", help="Audit records and the auditor's report.")
app.add_typer(users_app, name="users", help="Staff users, TOTP and key rotation.")
app.add_typer(remind_app, name="remind", help="Repayment reminders: plan, dispatch, report.")
mount_repayment(app)  # plans, restructure, hardship, relief (cli_repay.py)
app.command("decide")(decide_command)




@app.command("apikey")
def apikey(
    role: Annotated[str, typer.Option(help="administrator, operations, finance, borrower, …")],
    borrower: Annotated[str | None, typer.Option(help="Borrower reference (borrower keys)")] = None,
    label: Annotated[str | None, typer.Option(help="A note on who holds it")] = None,
    as_json: JsonOption = False,
) -> None:
    """Create an API key (shown once; only its hash is stored)."""
    from lendsafe.services.access import create_api_key

    container = _container()
    secret = guarded(lambda: create_api_key(container.engine, role, borrower, label))
    _emit({"key": secret, "role": role, "borrower": borrower}, as_json,
          lambda d: console.print(f"{d['key']}\n(role {role}; store it now, it is not shown "
                                  "again)"))


if __name__ == "__main__":
    app()
