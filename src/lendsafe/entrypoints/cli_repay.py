"""Flexible repayment on the command line: ``plans``, ``restructure``, ``hardship`` and
``relief declare|apply|accept|report`` (mounted from ``cli.py``).

``lendsafe loan LOAN_ID`` stays the loan statement; a change to a live loan is
``lendsafe restructure LOAN_ID --kind … --preview|--submit`` (a top-level command, so the
existing ``loan`` command keeps its arguments).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lendsafe.domain.money import MoneyError, currency, parse_amount
from lendsafe.domain.problems import Refused

console = Console()
errors = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for programs.")]

relief_app = typer.Typer(help="Mass relief events: declare, apply, accept, report.",
                         no_args_is_help=True)
hardship_app = typer.Typer(help="Borrowers' hardship requests.", no_args_is_help=True)
credit_app = typer.Typer(help="Credit-reporting flags and the gate before a negative report.",
                         no_args_is_help=True)
OPERATOR = "cli:operator"


def _container() -> Any:
    from lendsafe.bootstrap import build

    return build()


def _emit(document: Any, as_json: bool, render: Callable[[Any], None]) -> None:
    if as_json:
        sys.stdout.write(json.dumps(document, ensure_ascii=False, indent=2, default=str) + "\n")
    else:
        render(document)


def guarded(action: Callable[[], T]) -> T:
    """Run ``action``; refusals and bad input become clear errors with exit code 2."""
    try:
        return action()
    except Refused as refused:
        errors.print("[bold red]error:[/] refused")
        for problem in refused.problems:
            errors.print(escape(f"  - [{problem.code}] {problem.message}"))
    except (MoneyError, LookupError, ValueError, PermissionError) as error:
        errors.print(f"[bold red]error:[/] {escape(str(error))}")
    raise typer.Exit(2)


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO date such as 2026-03-01") from None


def plans(
    income: Annotated[str, typer.Option(help="Monthly income, e.g. 8000.00")],
    obligations: Annotated[str, typer.Option(help="Monthly debt obligations, e.g. 1000.00")],
    amount: Annotated[str, typer.Option(help="Amount asked for, e.g. 3000.00")],
    product: Annotated[str | None, typer.Option(help="Only this product")] = None,
    currency_code: Annotated[str, typer.Option("--currency")] = "CNY",
    start: Annotated[str | None, typer.Option(help="Start date (default: business date)")] = None,
    as_json: JsonOption = False,
) -> None:
    """Personalised plans that fit the affordability rule, ranked for the borrower."""
    from lendsafe.services.plans import offer_plans

    container = _container()

    def run() -> dict[str, Any]:
        cur = currency(currency_code)
        on = _parse_date(start) if start else container.lending.open_date()
        return offer_plans(container.catalogue, parse_amount(income, cur),
                           parse_amount(obligations, cur), parse_amount(amount, cur), on,
                           cur.code, product)

    _emit(guarded(run), as_json, _render_plans)


def _render_plans(document: dict[str, Any]) -> None:
    if not document["plans"]:
        console.print(f"[bold]no plan fits:[/] {document['reason']}")
        return
    table = Table("#", "product", "term", "largest instalment", "monthly", "annual rate",
                  "total cost")
    for n, p in enumerate(document["plans"], start=1):
        table.add_row(str(n), p["product"], p["term"], p["installment_max"],
                      p["monthly_payment"], p["annual_rate_disclosed"], p["total_cost"])
    console.print(table)
    console.print(f"ranking: {document['rule']['ranking']}")


def restructure(
    loan_id: int,
    kind: Annotated[str, typer.Option(help="instalment-conversion|deferral|extension|"
                                           "re-amortisation|re-ageing|rate-reduction|"
                                           "due-date-change|fee-waiver|penalty-waiver")],
    preview: Annotated[bool, typer.Option("--preview", help="Show, change nothing")] = False,
    submit: Annotated[bool, typer.Option("--submit", help="Apply (or propose for approval)")
                      ] = False,
    count: Annotated[int, typer.Option(help="Instalments / periods")] = 0,
    days: Annotated[int, typer.Option(help="Days (single-period extension)")] = 0,
    fee: Annotated[str, typer.Option(help="Extension fee, e.g. 3.65")] = "0",
    amount: Annotated[str | None, typer.Option(help="Waiver amount (default: all)")] = None,
    annual_rate: Annotated[str | None, typer.Option("--annual-rate")] = None,
    first_due: Annotated[str | None, typer.Option("--first-due", help="ISO date")] = None,
    frequency: Annotated[str | None, typer.Option(help="monthly|biweekly|weekly")] = None,
    holiday_interest: Annotated[str | None, typer.Option(
        "--holiday-interest", help="capitalised|accrued|waived")] = None,
    reason: Annotated[str, typer.Option(help="Why (kept with the approval request)")] = "",
    as_json: JsonOption = False,
) -> None:
    """Preview or submit a change to a live loan (maker-checker where policy says so)."""
    from lendsafe.services.access import Principal
    from lendsafe.services.restructuring import RestructuringService, parse_request

    if preview == submit:
        errors.print("[bold red]error:[/] give exactly one of --preview or --submit")
        raise typer.Exit(2)
    container = _container()
    service = RestructuringService(container.lending, security=container.security)

    def run() -> dict[str, Any]:
        code = container.lending.loan_view(loan_id)["currency"]
        request = parse_request({"kind": kind, "count": count, "days": days, "fee": fee,
                                 "amount": amount, "annual_rate": annual_rate,
                                 "first_due": first_due, "frequency": frequency,
                                 "holiday_interest": holiday_interest}, code)
        if preview:
            return service.preview(loan_id, request)
        return service.submit(loan_id, request, OPERATOR, reason,
                              Principal(OPERATOR, "operations"))

    _emit(guarded(run), as_json, _render_change)


def _render_change(document: dict[str, Any]) -> None:
    if document.get("status") == "pending_approval":
        console.print(f"proposed as action {document['action']['id']}: a second person with "
                      "approve.loan.restructure must approve it")
        document = document["preview"]
    for side in ("before", "after"):
        data = document[side]
        table = Table("#", "due date", "principal", "interest", "fees", "total", "paid",
                      title=f"{side}: annual rate {data['annual_rate_disclosed']}, total cost "
                            f"{data['total_cost']}, {data['bucket']}")
        for row in data["schedule"]:
            table.add_row(str(row["seq"]), row["due_date"], row["principal"], row["interest"],
                          row["fees"], row["total"], row["paid"])
        console.print(table)
    console.print(f"needs approval: {document['needs_approval']}; credit reporting: "
                  f"{document['credit_flag']}")


@hardship_app.command("list")
def hardship_list(status: Annotated[str, typer.Option(help="open|handled|all")] = "open",
                  as_json: JsonOption = False) -> None:
    """Hardship requests waiting for staff."""
    from lendsafe.services.restructuring import RestructuringService

    container = _container()
    service = RestructuringService(container.lending)
    rows = guarded(lambda: service.hardship_requests(None if status == "all" else status))
    _emit({"hardship_requests": rows}, as_json, lambda d: console.print(d))


@relief_app.command("declare")
def relief_declare(file: Annotated[Path, typer.Option("--file", help="event.toml")],
                   as_json: JsonOption = False) -> None:
    """Declare a relief event (overlapping events are refused)."""
    from lendsafe.services.relief import ReliefService

    container = _container()
    document = guarded(lambda: ReliefService(container.lending).declare(file, OPERATOR))
    _emit(document, as_json, lambda d: console.print(f"declared relief event {d['event_id']}"))


@relief_app.command("apply")
def relief_apply(event_id: int, as_json: JsonOption = False) -> None:
    """Apply an event to every covered loan (set-based, chunked, with a progress bar)."""
    from rich.progress import Progress

    from lendsafe.services.relief import ReliefService

    container = _container()

    def run() -> dict[str, Any]:
        with Progress(console=errors, transient=True, disable=as_json) as bar:
            task = bar.add_task("relief", total=None)
            return ReliefService(container.lending).apply(
                event_id, OPERATOR, progress=lambda n: bar.advance(task, n))

    _emit(guarded(run), as_json, lambda d: console.print(
        f"relief event {d['event_id']}: {d['loans_covered']} loans covered"))


@relief_app.command("accept")
def relief_accept(event_id: int, loan_id: int, as_json: JsonOption = False) -> None:
    """Record a borrower's acceptance of an offered deferral."""
    from lendsafe.services.relief import ReliefService

    container = _container()
    _emit(guarded(lambda: ReliefService(container.lending).accept(event_id, loan_id, OPERATOR)),
          as_json, lambda d: console.print(d))


@relief_app.command("report")
def relief_report(event_id: int, as_json: JsonOption = False) -> None:
    """Uptake, balances under relief and performance after."""
    from lendsafe.services.relief import ReliefService

    container = _container()
    _emit(guarded(lambda: ReliefService(container.lending).report(event_id)), as_json,
          lambda d: console.print(d))


@credit_app.command("flags")
def credit_flags(on: Annotated[str | None, typer.Option(help="only flags in force on "
                                                           "YYYY-MM-DD")] = None,
                 loan: Annotated[int | None, typer.Option(help="one loan's flags")] = None,
                 as_json: JsonOption = False) -> None:
    """Relief and forbearance flags, for the credit-reporting feed."""
    from lendsafe.services.credit_reporting import flags

    container = _container()
    day = None if on is None else _parse_date(on)
    with container.engine.connect() as connection:
        rows = guarded(lambda: flags(connection, on=day, loan_id=loan))
    _emit({"flags": rows}, as_json, lambda d: console.print(d))


@credit_app.command("gate")
def credit_gate(loan_id: int,
                on: Annotated[str | None, typer.Option(help="YYYY-MM-DD (default: the open "
                                                           "business date)")] = None,
                as_json: JsonOption = False) -> None:
    """May a negative record be reported for this loan now? (reasons in English and Chinese)"""
    from lendsafe.services.credit_reporting import reporting_gate

    container = _container()
    with container.engine.connect() as connection:
        day = _parse_date(on) if on else container.lending.open_date(connection)
        document = guarded(lambda: reporting_gate(connection, loan_id, day))
    _emit(document, as_json, lambda d: console.print(d))


def mount(app: typer.Typer) -> None:
    """Add these commands to the main ``lendsafe`` app."""
    app.command("plans")(plans)
    app.command("restructure")(restructure)
    app.add_typer(relief_app, name="relief", help="Mass relief events.")
    app.add_typer(hardship_app, name="hardship", help="Borrowers' hardship requests.")
    app.add_typer(credit_app, name="credit", help="Credit-reporting flags and the gate.")
