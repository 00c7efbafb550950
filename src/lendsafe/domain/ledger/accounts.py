"""The chart of accounts and the double-entry transfer, the journal's only record.

A transfer moves one amount from a credited account to a debited one (as TigerBeetle's
transfers do), so every journal row balances by construction and a compound posting is a
set of transfers sharing a transaction. Normal balances: assets and expenses are debit
accounts; income and liabilities are credit accounts.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Account(Enum):
    """Ledger accounts (codes are stored in the database; never renumber)."""

    CASH = "1000"
    PRINCIPAL_RECEIVABLE = "1100"
    INTEREST_RECEIVABLE = "1110"
    FEE_RECEIVABLE = "1120"
    PENALTY_RECEIVABLE = "1130"
    SUSPENSE = "2100"  # money received that is owed back or not yet allocated
    INTEREST_INCOME = "4000"
    FEE_INCOME = "4010"
    PENALTY_INCOME = "4020"
    RECOVERIES = "4100"
    WRITE_OFF_EXPENSE = "5000"

    @property
    def debit_normal(self) -> bool:
        """True for assets and expenses."""
        return self.value[0] in "15"


@dataclass(frozen=True)
class Transfer:
    """Debit one account and credit another with the same positive amount."""

    debit: Account
    credit: Account
    amount_minor: int
    kind: str

    def __post_init__(self) -> None:
        if self.amount_minor <= 0:
            raise ValueError(f"a transfer moves a positive amount, got {self.amount_minor}")
        if self.debit is self.credit:
            raise ValueError("a transfer needs two different accounts")
