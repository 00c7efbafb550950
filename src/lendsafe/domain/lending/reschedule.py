"""Rebuilding the rest of a live loan's schedule on a new balance (prepayment, restructuring).

The instalment in progress (the *head*) keeps its due date and what was already paid on
it; the new schedule starts at ``restart`` on ``balance_minor`` and runs over the head's
remaining period and the later periods (the *tail*), by the loan's shape and prepayment
rule. The head's remaining interest is its full-period rate prorated by actual days left
(the same proration as daily accrual and payoff, after Apache Fineract), so that a
restart with no change of balance changes no interest. Interest per later period =
balance × rate × year fraction, rounded by the product's rule;
the last instalment absorbs rounding so principal scheduled equals the balance exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import date
from fractions import Fraction

from lendsafe.domain.lending.loan import InstallmentState, ServicingRules
from lendsafe.domain.lending.product import LoanType, Prepayment
from lendsafe.domain.lending.schedule import annuity_payment
from lendsafe.domain.money import round_fraction


def _rate(rules: ServicingRules, start: date, end: date) -> Fraction:
    return Fraction(rules.annual_rate) * rules.day_count.year_fraction(start, end)


def _head_rate(rules: ServicingRules, head: InstallmentState, restart: date) -> Fraction:
    """The rate for the rest of the head period, prorated by actual days (as accrual is)."""
    full = _rate(rules, head.period_start, head.due_date)
    length = (head.due_date - head.period_start).days
    if length <= 0:
        return Fraction(0)
    return full * Fraction((head.due_date - restart).days, length)


def _principal_parts(
    rules: ServicingRules, rates: list[Fraction], balance: int, level: tuple[int, int]
) -> list[tuple[int, int]]:
    """(principal, interest) per period for the new balance; may use fewer periods."""
    old_payment, old_principal = level
    keep_term = rules.prepayment is Prepayment.REDUCE_INSTALLMENT
    if rules.type is LoanType.ANNUITY:
        payment = annuity_payment(balance, rates, rules.rounding) if keep_term else old_payment
        return _amortise(rules, rates, balance, lambda interest: payment - interest)
    if rules.type is LoanType.EQUAL_PRINCIPAL:
        part = round_fraction(Fraction(balance, len(rates)), rules.rounding)
        each = part if keep_term else old_principal
        return _amortise(rules, rates, balance, lambda interest: each)
    return _amortise(rules, rates, balance, lambda interest: 0)


def _amortise(
    rules: ServicingRules,
    rates: list[Fraction],
    balance: int,
    principal_for: Callable[[int], int],
) -> list[tuple[int, int]]:
    parts: list[tuple[int, int]] = []
    for number, rate in enumerate(rates, start=1):
        if balance <= 0:
            break
        interest = round_fraction(balance * rate, rules.rounding)
        last = number == len(rates)
        principal = balance if last else min(balance, max(principal_for(interest), 0))
        parts.append((principal, interest))
        balance -= principal
    return parts


def rebuild_future(
    rules: ServicingRules,
    head: InstallmentState,
    tail: Sequence[InstallmentState],
    balance_minor: int,
    restart: date,
) -> list[InstallmentState]:
    """The head instalment merged with the new schedule's first period, then the tail."""
    if balance_minor <= 0:
        settled = replace(head, principal_due=head.principal_paid, interest_due=head.interest_paid)
        return [replace(settled, fee_due=head.fee_paid, fee_recognized=head.fee_paid)]
    rates = [_head_rate(rules, head, restart)]
    rates += [_rate(rules, t.period_start, t.due_date) for t in tail]
    reference = tail[0] if tail else head
    level = (reference.principal_due + reference.interest_due, reference.principal_due)
    parts = _principal_parts(rules, rates, balance_minor, level)
    first_principal, first_interest = parts[0]
    rows = [
        replace(
            head,
            principal_due=head.principal_paid + first_principal,
            interest_due=head.interest_paid + first_interest,
        )
    ]
    for (principal, interest), old in zip(parts[1:], tail, strict=False):
        rows.append(
            InstallmentState(
                seq=old.seq,
                period_start=old.period_start,
                due_date=old.due_date,
                principal_due=principal,
                interest_due=interest,
                fee_due=old.fee_due,
            )
        )
    return rows
