"""Posting rules for restructuring and relief events (registered on ``postings``).

Importing this module registers the rules. Waivers are explicit transfers to the
write-off expense account 5000 (kind ``waiver_fee`` / ``waiver_penalty``), so forgiven
money is never silently lost; capitalised interest moves to principal receivable.
"""

from __future__ import annotations

from lendsafe.domain import restructure_events as rev
from lendsafe.domain.ledger.accounts import Account as A
from lendsafe.domain.ledger.accounts import Transfer
from lendsafe.domain.ledger.posting import postings

WAIVER_EXPENSE = A.WRITE_OFF_EXPENSE


def _nonzero(*transfers: tuple[A, A, int, str]) -> list[Transfer]:
    return [Transfer(d, c, amount, kind) for d, c, amount, kind in transfers if amount > 0]


@postings.register
def _capitalised(event: rev.InterestCapitalised) -> list[Transfer]:
    earned_now = event.amount_minor - event.receivable_minor
    return _nonzero(
        (A.PRINCIPAL_RECEIVABLE, A.INTEREST_RECEIVABLE, event.receivable_minor, "capitalised"),
        (A.PRINCIPAL_RECEIVABLE, A.INTEREST_INCOME, earned_now, "capitalised"),
    )


@postings.register
def _fee_capitalised(event: rev.FeeCapitalised) -> list[Transfer]:
    return _nonzero((A.PRINCIPAL_RECEIVABLE, A.FEE_RECEIVABLE, event.amount_minor, "capitalised"))


@postings.register
def _fee_waived(event: rev.FeeWaived) -> list[Transfer]:
    return _nonzero((WAIVER_EXPENSE, A.FEE_RECEIVABLE, event.amount_minor, "waiver_fee"))


@postings.register
def _penalty_waived(event: rev.PenaltyWaived) -> list[Transfer]:
    return _nonzero((WAIVER_EXPENSE, A.PENALTY_RECEIVABLE, event.amount_minor, "waiver_penalty"))


@postings.register
def _restructured(event: rev.LoanRestructured) -> list[Transfer]:
    return []


@postings.register
def _relieved(event: rev.ReliefApplied) -> list[Transfer]:
    return []
