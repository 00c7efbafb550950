"""``lendsafe ledger …``: verify the tamper-evident journal, sign heads, proofs and receipts.

Exit codes: 0 ok; 1 verification or receipt check failed; 2 bad input (unknown entry, …).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

ledger_app = typer.Typer(no_args_is_help=True,
                         help="Tamper-evident ledger: verify, heads, proofs, receipts.")
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for programs.")]


def _ledger() -> Any:
    from lendsafe.bootstrap import build

    return build().ledger


def _print(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n")


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@ledger_app.command()
def verify(as_json: JsonOption = False) -> None:
    """Recompute every leaf and root; compare with stored and exported signed heads."""
    report = _ledger().verify()
    document = report.as_dict()
    if as_json:
        _print(document)
    else:
        bad = document["first_bad_entry"]
        state = "ok" if report.ok else "FAILED"
        typer.echo(f"ledger {report.ledger_id}: {state}; {report.entries} entries, root "
                   f"{report.root[:16]}…, {report.heads_checked} heads "
                   f"({report.exported_heads} exported), {report.seconds} s")
        if bad:
            typer.echo(f"first bad entry: {bad['kind']} id {bad['id']} at position "
                       f"{bad['position']}: {bad['reason']}")
        for problem in report.problems:
            typer.echo(f"  - {problem}")
    if not report.ok:
        raise typer.Exit(1)


@ledger_app.command()
def seal(as_json: JsonOption = False) -> None:
    """Seal any unsealed rows now (e.g. after an interrupted close of business)."""
    ledger = _ledger()
    with ledger.engine.begin() as connection:
        result = ledger.seal(connection, actor="cli")
    document = {"appended": result.appended, "size": result.size, "root": result.root.hex()}
    _print(document) if as_json else typer.echo(
        f"sealed {result.appended}; log size {result.size}")


@ledger_app.command()
def head(as_json: JsonOption = False) -> None:
    """Seal, sign (Ed25519) and export a tree head now."""
    ledger = _ledger()
    signed = ledger.head()
    _print(signed.to_dict()) if as_json else typer.echo(
        f"signed head: size {signed.size}, root {signed.root.hex()}, exported to "
        f"{ledger.heads_dir / signed.ledger_id}")


@ledger_app.command()
def proof(entry_id: int,
          kind: Annotated[str, typer.Option(help="journal or audit")] = "journal",
          as_json: JsonOption = False) -> None:
    """An inclusion proof of one entry against the latest signed head."""
    from lendsafe.services.ledger import KINDS, LedgerError

    if kind not in KINDS:
        _fail(f"--kind must be one of {sorted(KINDS)}")
    try:
        document = _ledger().proof(entry_id, kind)
    except LedgerError as error:
        _fail(str(error))
    if as_json:
        _print(document)
    else:
        typer.echo(f"{kind} {entry_id} at position {document['position']} of "
                   f"{document['tree_head']['size']}; {len(document['proof'])} proof hashes; "
                   f"root {document['tree_head']['root']}")


@ledger_app.command()
def receipt(payment_id: int,
            out: Annotated[Path, typer.Option("--out", help="Where to write the JSON receipt")]
            ) -> None:
    """A payment receipt: the payment, its journal entries, their proofs, the signed head."""
    from lendsafe.services.ledger import LedgerError

    try:
        document = _ledger().receipt(payment_id)
    except LedgerError as error:
        _fail(str(error))
    out.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    typer.echo(f"receipt for payment {payment_id} written to {out}")


@ledger_app.command("check-receipt")
def check_receipt(
    file: Path,
    public_key: Annotated[Path | None, typer.Option("--public-key",
                                                    help="PEM file of the trusted key")] = None,
    as_json: JsonOption = False,
) -> None:
    """Verify a receipt offline (no database): signature, leaves and inclusion proofs."""
    from lendsafe.services.ledger import check_receipt as check

    try:
        document = json.loads(file.read_text())
        key = public_key.read_bytes() if public_key else None
    except (OSError, ValueError) as error:
        _fail(f"cannot read the receipt or key: {error}")
    problems = check(document, key)
    if as_json:
        _print({"ok": not problems, "problems": problems})
    else:
        typer.echo("receipt verifies" if not problems else "receipt does NOT verify")
        for problem in problems:
            typer.echo(f"  - {problem}")
    if problems:
        raise typer.Exit(1)


@ledger_app.command("public-key")
def public_key() -> None:
    """Print the ledger's Ed25519 public key (PEM), to give to whoever checks receipts."""
    from lendsafe.adapters.signing import export_public_key

    typer.echo(export_public_key(_ledger().signer.public_key).decode(), nl=False)
