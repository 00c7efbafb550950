"""Who is calling and what they may do: principals, permissions, API keys.

Roles and permissions are data (``data/roles.toml``, see ``lendsafe.domain.control.roles``);
code checks *permissions*. A caller is resolved to a :class:`Principal` by an API key
(integrations and the older keys: only its SHA-256 is stored) or by a session token (staff
password login, borrower one-time code; see ``lendsafe.services.control``). A borrower
principal carries the borrower id and may see only that borrower's loans.
"""

from __future__ import annotations

import hashlib
import secrets
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path

from sqlalchemy import Engine, bindparam, insert, select

from lendsafe.adapters.db import tables as t
from lendsafe.adapters.db.engine import reading
from lendsafe.domain.control.roles import RoleCatalogue, parse_roles
from lendsafe.domain.problems import Problem, Refused


@lru_cache(maxsize=4)
def role_catalogue(path: Path | None = None) -> RoleCatalogue:
    """Roles, permissions and conflict rules (the packaged ``roles.toml`` by default)."""
    if path is None:
        text = resources.files("lendsafe.data").joinpath("roles.toml").read_text("utf-8")
    else:
        text = path.read_text("utf-8")
    return parse_roles(tomllib.loads(text))


STAFF_ROLES = frozenset(r.name for r in role_catalogue().roles.values() if r.staff)
ROLES = frozenset(role_catalogue().roles)


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a subject, their roles and the permissions these grant."""

    subject: str
    role: str
    borrower_id: int | None = None
    roles: frozenset[str] = frozenset()
    permissions: frozenset[str] = frozenset()
    session_id: str | None = None
    via: str = "api_key"  # "api_key" | "password" | "otp"
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not self.roles:
            object.__setattr__(self, "roles", frozenset({self.role}))
        if not self.permissions:
            object.__setattr__(self, "permissions",
                               role_catalogue().permissions_of(self.roles))

    @property
    def is_staff(self) -> bool:
        """True for lender staff roles."""
        return role_catalogue().is_staff(self.roles)

    def can(self, permission: str) -> bool:
        """True when the caller holds ``permission``."""
        return permission in self.permissions


class Unauthenticated(PermissionError):
    """No valid credentials."""


class Forbidden(PermissionError):
    """Valid credentials without the right to do this."""


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_api_key(engine: Engine, role: str, borrower_ref: str | None = None,
                   label: str | None = None) -> str:
    """Create a key for ``role`` (a borrower key is bound to one borrower); returns it once."""
    if role not in ROLES:
        raise Refused([Problem("access.role", f"unknown role {role!r}; roles: "
                               f"{', '.join(sorted(ROLES))}", field="role")])
    if (role == "borrower") != (borrower_ref is not None):
        raise Refused([Problem("access.borrower", "a borrower key needs --borrower REF, and "
                               "only a borrower key takes one", field="borrower")])
    secret = "lsk_" + secrets.token_urlsafe(32)
    with engine.begin() as connection:
        borrower_id = None
        if borrower_ref is not None:
            borrower_id = connection.execute(select(t.borrowers.c.id).where(
                t.borrowers.c.external_ref == borrower_ref)).scalar()
            if borrower_id is None:
                raise Refused([Problem("access.borrower", f"no borrower {borrower_ref!r}")])
        connection.execute(insert(t.api_keys).values(
            key_hash=_hash(secret), role=role, borrower_id=borrower_id, label=label,
            created_at=datetime.now(UTC)))
    return secret


def authenticate(engine: Engine, secret: str | None) -> Principal:
    """The principal behind an API key, or Unauthenticated (never says which part was wrong)."""
    if not secret or len(secret) > 200 or not secret.startswith("lsk_"):
        raise Unauthenticated("missing or malformed credentials")
    with reading(engine).connect() as connection:
        row = connection.execute(_KEY_BY_HASH, {"b_hash": _hash(secret)}).first()
    if row is None or row.role not in ROLES:
        raise Unauthenticated("invalid credentials")
    return Principal(subject=f"key:{row.id}", role=row.role, borrower_id=row.borrower_id)


_KEY_BY_HASH = select(t.api_keys).where(  # every API call: built once
    t.api_keys.c.key_hash == bindparam("b_hash"), t.api_keys.c.revoked_at.is_(None))


def require(principal: Principal, permission: str) -> None:
    """Refuse callers without ``permission``."""
    if not principal.can(permission):
        raise Forbidden(f"this needs the permission {permission!r}")


def require_staff(principal: Principal) -> None:
    """Refuse non-staff callers."""
    if not principal.is_staff:
        raise Forbidden("this needs a staff role")


def require_loan_access(principal: Principal, loan_borrower_id: int) -> None:
    """Staff with ``loans.read`` see every loan; a borrower only their own.

    Anything else looks exactly like a missing loan (``LookupError`` → 404, no data).
    """
    if principal.can("loans.read"):
        return
    if principal.can("loans.read.own") and principal.borrower_id is not None \
            and principal.borrower_id == loan_borrower_id:
        return
    raise LookupError("loan not found")
