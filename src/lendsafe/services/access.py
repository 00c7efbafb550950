"""Who is calling: API keys today, the seam that staff and borrower login will fill.

A key is a random secret shown once; only its SHA-256 is stored. Every request resolves
to a :class:`Principal` with a role; a borrower principal carries the borrower id and may
see only that borrower's loans.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, insert, select

from lendsafe.adapters.db import tables as t
from lendsafe.domain.problems import Problem, Refused

STAFF_ROLES = frozenset({"administrator", "operations", "finance", "underwriter", "risk_officer",
                         "collector", "auditor"})
ROLES = STAFF_ROLES | {"borrower", "integration"}


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    subject: str
    role: str
    borrower_id: int | None = None

    @property
    def is_staff(self) -> bool:
        """True for lender staff roles."""
        return self.role in STAFF_ROLES


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
    """The principal behind a key, or Unauthenticated (never says which part was wrong)."""
    if not secret or len(secret) > 200:
        raise Unauthenticated("missing or malformed credentials")
    with engine.connect() as connection:
        row = connection.execute(select(t.api_keys).where(
            t.api_keys.c.key_hash == _hash(secret), t.api_keys.c.revoked_at.is_(None))).first()
    if row is None:
        raise Unauthenticated("invalid credentials")
    return Principal(subject=f"key:{row.id}", role=row.role, borrower_id=row.borrower_id)


def require_staff(principal: Principal) -> None:
    """Refuse non-staff callers."""
    if not principal.is_staff:
        raise Forbidden("this needs a staff role")


def require_loan_access(principal: Principal, loan_borrower_id: int) -> None:
    """Staff see every loan; a borrower only their own (others look like missing loans)."""
    if principal.is_staff:
        return
    if principal.role == "borrower" and principal.borrower_id == loan_borrower_id:
        return
    raise LookupError("loan not found")
