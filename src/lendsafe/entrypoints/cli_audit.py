"""``lendsafe audit …``: the internal auditor's periodic report and the raw records."""

from __future__ import annotations

import json
import sys
from datetime import date
from typing import Annotated, Any

import typer

audit_app = typer.Typer(no_args_is_help=True, help="Audit records and the auditor's report.")
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for programs.")]
FromOption = Annotated[str, typer.Option("--from", help="First date (ISO), inclusive.")]
ToOption = Annotated[str, typer.Option("--to", help="Last date (ISO), inclusive.")]


def _dates(start: str, end: str) -> tuple[date, date]:
    try:
        return date.fromisoformat(start), date.fromisoformat(end)
    except ValueError:
        typer.echo("error: --from and --to must be ISO dates such as 2026-03-01", err=True)
        raise typer.Exit(2) from None


@audit_app.command()
def report(start: FromOption, end: ToOption, as_json: JsonOption = False) -> None:
    """Overrides, maker-checker decisions and waiting items, segregation conflicts, failed
    logins, personal-data access and ledger verification results for a period."""
    from lendsafe.bootstrap import build

    container = build()
    first, last = _dates(start, end)
    document = container.security.audit_report(first, last)
    if as_json:
        sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        return
    _render(document)


def _render(d: dict[str, Any]) -> None:
    mc = d["maker_checker"]
    lines = [
        f"audit report {d['from']} .. {d['to']}: {d['records']} records",
        f"overrides applied: {len(d['overrides'])}",
        f"maker-checker: {len(mc['decisions'])} decisions, {len(mc['proposed'])} proposed, "
        f"{len(mc['waiting'])} waiting",
        f"segregation conflicts: {len(d['segregation_conflicts'])}",
        f"failed logins / lockouts: {len(d['failed_logins'])}",
        f"personal-data reads: {len(d['pii_access'])}",
        f"ledger: {len(d['ledger']['verifications'])} verifications "
        f"({sum(1 for v in d['ledger']['verifications'] if not v['ok'])} failed), "
        f"{len(d['ledger']['unexpected_rows'])} unexpected-row notices",
    ]
    for item in mc["waiting"]:
        lines.append(f"  waiting #{item['id']} {item['kind']} {item['target']} by "
                     f"{item['maker']} since {item['since']}")
    for conflict in d["segregation_conflicts"]:
        lines.append(f"  conflict: {conflict}")
    typer.echo("\n".join(lines))


@audit_app.command()
def records(start: FromOption, end: ToOption,
            action: Annotated[str | None, typer.Option(help="Action prefix, e.g. pii.")] = None,
            ) -> None:
    """The audit records of a period as JSON."""
    from lendsafe.bootstrap import build
    from lendsafe.services.audit import records as list_records

    first, last = _dates(start, end)
    document = list_records(build().engine, first, last, action)
    sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
