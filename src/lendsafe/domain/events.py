"""Domain events: the frozen vocabulary that bounded contexts share.

Lending emits these; the ledger's posting rules turn them into journal transfers, and the
reminder planner and the audit log read them. Amounts are integer minor units.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class LoanEvent:
    """Base of every loan event."""

    loan_id: int
    on: date


@dataclass(frozen=True)
class LoanDisbursed(LoanEvent):
    """Principal owed is recognised; cash goes out; an up-front fee is earned."""

    principal_minor: int
    cash_minor: int
    fee_minor: int


@dataclass(frozen=True)
class InterestAccrued(LoanEvent):
    """Interest earned and now receivable."""

    amount_minor: int


@dataclass(frozen=True)
class FeeCharged(LoanEvent):
    """A periodic fee fell due (or was paid in advance) and is now receivable."""

    amount_minor: int


@dataclass(frozen=True)
class PenaltyAccrued(LoanEvent):
    """Penalty (overdue) interest earned on arrears."""

    amount_minor: int


@dataclass(frozen=True)
class PaymentAllocated(LoanEvent):
    """A payment and how it was split; ``excess_minor`` is owed back to the borrower."""

    payment_id: int
    principal_minor: int
    interest_minor: int
    fee_minor: int
    penalty_minor: int
    excess_minor: int

    @property
    def amount_minor(self) -> int:
        """The whole payment."""
        return (
            self.principal_minor
            + self.interest_minor
            + self.fee_minor
            + self.penalty_minor
            + self.excess_minor
        )


@dataclass(frozen=True)
class LoanChargedOff(LoanEvent):
    """Receivables written off after too many days past due."""

    principal_minor: int
    interest_minor: int
    fee_minor: int
    penalty_minor: int


@dataclass(frozen=True)
class RecoveryReceived(LoanEvent):
    """Cash received on a charged-off loan."""

    payment_id: int
    amount_minor: int


@dataclass(frozen=True)
class LoanClosed(LoanEvent):
    """Everything owed has been paid."""


@dataclass(frozen=True)
class BusinessDayClosed:
    """Close of business finished for every loan on ``on`` (set-based; no per-loan events)."""

    on: date
    loans: int
    journal_entries: int
