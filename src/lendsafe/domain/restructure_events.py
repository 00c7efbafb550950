"""Events of restructuring and relief: the money they move, in the shared vocabulary.

Lending emits these; the posting rules in ``lendsafe.domain.ledger.restructure_posting``
turn them into journal transfers (lending and the ledger meet only through events, so the
events live beside ``lendsafe.domain.events`` rather than inside either context).
Amounts are integer minor units.
"""

from __future__ import annotations

from dataclasses import dataclass

from lendsafe.domain.events import LoanEvent


@dataclass(frozen=True)
class LoanRestructured(LoanEvent):
    """A live loan's schedule or balances were changed (moves no money by itself)."""

    kind: str
    principal_before_minor: int
    principal_after_minor: int


@dataclass(frozen=True)
class InterestCapitalised(LoanEvent):
    """Interest added to the principal owed.

    ``receivable_minor`` was already recognised (moves from interest to principal
    receivable); the rest is earned now (interest income).
    """

    amount_minor: int
    receivable_minor: int = 0


@dataclass(frozen=True)
class FeeCapitalised(LoanEvent):
    """Recognised, unpaid fees added to the principal owed (fee to principal receivable)."""

    amount_minor: int


@dataclass(frozen=True)
class FeeWaived(LoanEvent):
    """Recognised, unpaid fees forgiven (an explicit expense)."""

    amount_minor: int


@dataclass(frozen=True)
class PenaltyWaived(LoanEvent):
    """Recognised, unpaid penalty interest forgiven (an explicit expense)."""

    amount_minor: int


@dataclass(frozen=True)
class ReliefApplied(LoanEvent):
    """A loan was put under a mass relief event (window, and a deferral if offered)."""

    event_id: int
    deferral_days: int
    offered: bool = False  # the deferral is offered for the borrower to accept, not applied
