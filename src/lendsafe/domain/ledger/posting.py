"""Posting rules: how each domain event becomes balanced journal transfers."""

from __future__ import annotations

from functools import singledispatch

from lendsafe.domain import events as ev
from lendsafe.domain.ledger.accounts import Account as A
from lendsafe.domain.ledger.accounts import Transfer


def _nonzero(*transfers: tuple[A, A, int, str]) -> list[Transfer]:
    return [Transfer(d, c, amount, kind) for d, c, amount, kind in transfers if amount > 0]


@singledispatch
def postings(event: ev.LoanEvent) -> list[Transfer]:
    """The transfers an event causes (none for events that move no money)."""
    return []


@postings.register
def _disbursed(event: ev.LoanDisbursed) -> list[Transfer]:
    return _nonzero(
        (A.PRINCIPAL_RECEIVABLE, A.CASH, event.cash_minor, "disbursement"),
        (A.PRINCIPAL_RECEIVABLE, A.FEE_INCOME, event.fee_minor, "upfront_fee"),
    )


@postings.register
def _interest(event: ev.InterestAccrued) -> list[Transfer]:
    return _nonzero((A.INTEREST_RECEIVABLE, A.INTEREST_INCOME, event.amount_minor, "accrual"))


@postings.register
def _fee(event: ev.FeeCharged) -> list[Transfer]:
    return _nonzero((A.FEE_RECEIVABLE, A.FEE_INCOME, event.amount_minor, "fee"))


@postings.register
def _penalty(event: ev.PenaltyAccrued) -> list[Transfer]:
    return _nonzero((A.PENALTY_RECEIVABLE, A.PENALTY_INCOME, event.amount_minor, "penalty"))


@postings.register
def _payment(event: ev.PaymentAllocated) -> list[Transfer]:
    return _nonzero(
        (A.CASH, A.PENALTY_RECEIVABLE, event.penalty_minor, "payment"),
        (A.CASH, A.FEE_RECEIVABLE, event.fee_minor, "payment"),
        (A.CASH, A.INTEREST_RECEIVABLE, event.interest_minor, "payment"),
        (A.CASH, A.PRINCIPAL_RECEIVABLE, event.principal_minor, "payment"),
        (A.CASH, A.SUSPENSE, event.excess_minor, "overpayment"),
    )


@postings.register
def _charge_off(event: ev.LoanChargedOff) -> list[Transfer]:
    return _nonzero(
        (A.WRITE_OFF_EXPENSE, A.PRINCIPAL_RECEIVABLE, event.principal_minor, "charge_off"),
        (A.WRITE_OFF_EXPENSE, A.INTEREST_RECEIVABLE, event.interest_minor, "charge_off"),
        (A.WRITE_OFF_EXPENSE, A.FEE_RECEIVABLE, event.fee_minor, "charge_off"),
        (A.WRITE_OFF_EXPENSE, A.PENALTY_RECEIVABLE, event.penalty_minor, "charge_off"),
    )


@postings.register
def _recovery(event: ev.RecoveryReceived) -> list[Transfer]:
    return _nonzero((A.CASH, A.RECOVERIES, event.amount_minor, "recovery"))
