"""``lendsafe decide --file application.json`` and ``lendsafe model monitor MODEL_ID``.

Bad input prints the problems (each naming its field) on stderr and exits with code 2;
nothing is stored.
"""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

errors = Console(stderr=True, soft_wrap=True)
out = Console()


def _fail(message: str, problems: list[dict[str, Any]] | None = None) -> None:
    errors.print(f"[bold red]error:[/] {message}")
    for problem in problems or []:
        errors.print(f"  - [{problem['code']}] {problem['message']}")
    raise typer.Exit(2)


def _container() -> Any:
    from lendsafe.bootstrap import build

    return build()


def decide(
    file: Annotated[Path, typer.Option("--file", help="Application JSON file ('-' = stdin).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for programs.")] = False,
) -> None:
    """Decide a credit application: approve, decline or refer, with reasons and products."""
    from lendsafe.domain.problems import Refused
    from lendsafe.services.lending import Conflict

    try:
        text = sys.stdin.read() if str(file) == "-" else file.read_text("utf-8")
        document = json.loads(text)
    except (OSError, json.JSONDecodeError) as error:
        _fail(f"cannot read an application from {file}: {error}")
    container = _container()
    try:
        result = container.decisions.decide(document, actor="cli")
    except Refused as refused:
        _fail("refused", [p.as_dict() for p in refused.problems])
    except Conflict as error:
        _fail(str(error))
    finally:
        container.engine.dispose()
    if as_json:
        sys.stdout.write(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
        return
    _render(result)


def _render(result: dict[str, Any]) -> None:
    out.print(f"[bold]{result['decision'].upper()}[/]  application {result['application_id']}  "
              f"PD {result['pd']}  score {result['score']}  limit {result['limit']} "
              f"{result['currency']}  rate {result['annual_rate_offered']}")
    for reason in result["reasons"]:
        out.print(f"  - [{reason['code']}] {reason['text_en']} / {reason['text_zh']}")
    for item in result["products"]:
        state = "available" if item["available"] else "unavailable"
        alternative = item["alternative"]
        hint = "" if alternative is None else (
            f" → try {alternative['product']} {alternative['amount']} over {alternative['term']}"
            + (f" from {alternative['available_from']}" if alternative["available_from"] else ""))
        out.print(f"  {item['product']:<20} {state:<11} limit {item['limit']}{hint}")


def monitor_report(model_id: str, since: str | None) -> dict[str, Any]:
    """The monitoring report of ``lendsafe model monitor`` (see services.decision_control)."""
    from lendsafe.services.decision_control import monitor

    start = None
    if since:
        try:
            start = date.fromisoformat(since)
        except ValueError:
            _fail(f"--since {since!r} is not an ISO date such as 2026-03-01")
    container = _container()
    try:
        return monitor(container.engine, container.decisions.models, model_id, start)
    except LookupError as error:
        _fail(str(error))
    finally:
        container.engine.dispose()
    raise AssertionError("unreachable")
