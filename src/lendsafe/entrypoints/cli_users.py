"""``lendsafe users …``: staff users, TOTP, personal-data key rotation.

Creating a user with roles here is the operator (bootstrap) path: it is audited and the
segregation-of-duties rules apply. Later grants go through maker-checker (``POST
/control/actions`` with kind ``role.grant``), approved by a second administrator.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any, NoReturn

import typer

users_app = typer.Typer(no_args_is_help=True, help="Staff users, TOTP and key rotation.")


def _security() -> Any:
    from lendsafe.bootstrap import build

    return build().security


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@users_app.command()
def create(
    username: str,
    role: Annotated[list[str] | None,
                    typer.Option("--role", help="Role to grant (repeat).")] = None,
    password: Annotated[str | None, typer.Option(
        "--password", help="Prefer --password-stdin (a flag stays in shell history).")] = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin")] = False,
) -> None:
    """Create a staff user with an argon2-hashed password."""
    from lendsafe.domain.problems import Refused

    secret = sys.stdin.readline().rstrip("\n") if password_stdin else password
    if not secret:
        secret = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    try:
        user_id = _security().create_user(username, secret, tuple(role or ()))
    except Refused as refused:
        _fail("; ".join(p.message for p in refused.problems))
    typer.echo(f"created user {username} (id {user_id}) with roles {sorted(role or [])}")


@users_app.command("enable-totp")
def enable_totp(username: str) -> None:
    """Turn on TOTP; prints the base32 secret once (enter it in an authenticator app)."""
    from lendsafe.domain.control.totp import secret_to_base32
    from lendsafe.domain.problems import Refused

    try:
        secret = _security().set_totp(username)
    except Refused as refused:
        _fail("; ".join(p.message for p in refused.problems))
    typer.echo(f"TOTP secret (base32, shown once): {secret_to_base32(secret)}")


@users_app.command("list")
def list_users() -> None:
    """Users, their roles and any segregation conflict."""
    from sqlalchemy import select

    from lendsafe.adapters.db import control_tables as ct

    security = _security()
    with security.engine.connect() as connection:
        rows = connection.execute(select(ct.users.c.id, ct.users.c.username)).all()
        users = [{"id": r.id, "username": r.username,
                  "roles": security.user_roles(connection, r.id)} for r in rows]
    sys.stdout.write(json.dumps({"users": users, "conflicts": security.conflicts()},
                                indent=2) + "\n")


@users_app.command("rotate-keys")
def rotate_keys() -> None:
    """Re-wrap every personal-data key under the current master key (first in
    ``LENDSAFE_MASTER_KEYS``); keep the old key configured until this has run."""
    count = _security().rotate_keys()
    typer.echo(f"re-wrapped {count} data keys")
