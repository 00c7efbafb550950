"""Payment reversal by replay: the plan and the pure helpers behind
:meth:`lendsafe.services.lending.LendingService.reverse_payment`.

The loan is rebuilt from booking without the payment (the rule is in
:mod:`lendsafe.domain.lending.payments`); the booked schedule is rebuilt from the term
stored with the loan (for loans booked before the term was stored, from the terms that
could have produced the stored maturity) and accepted only if replaying the whole stored
history reproduces the loan and its journal. The journal is then brought, per pair
of accounts, to the rebuilt history's transfers with the payment's own transfers posted
back plus balancing "replay" transfers - never an update.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Connection, select

from lendsafe.adapters.db import restructure_tables as rt
from lendsafe.adapters.db.repository import (
    REVERSAL_PREFIX,
    JournalRow,
    LoanHistory,
    LoanRecord,
    servicing_columns,
)
from lendsafe.domain import events as ev
from lendsafe.domain.calendar import BusinessCalendar, Frequency
from lendsafe.domain.ledger.posting import postings
from lendsafe.domain.lending.loan import LoanState
from lendsafe.domain.lending.payments import Replayed
from lendsafe.domain.lending.product import (
    FeeMode,
    LoanType,
    Product,
    Term,
    TermUnit,
    parse_term,
)
from lendsafe.domain.lending.schedule import LoanTerms, Schedule, build_schedule
from lendsafe.domain.money import currency
from lendsafe.domain.problems import Problem, Refused


@dataclass(frozen=True)
class ReversalPlan:
    """What reversing a payment does, computed before anything is written."""

    payment_id: int
    on: date  # the open business date the reversal is posted on
    before: LoanRecord
    history: LoanHistory
    after: Replayed  # the loan rebuilt without the payment
    mirrored: tuple[JournalRow, ...]  # the payment's own transfers, posted back
    adjustments: tuple[tuple[str, str, int], ...]  # (debit, credit, amount) of the replay
    reallocated: dict[int, dict[str, int]]  # later payments' new split, by payment id


def reversal_document(plan: ReversalPlan) -> dict[str, Any]:
    """The JSON form of a reversal (amounts in minor units, as control results are)."""
    reference = f"{REVERSAL_PREFIX}{plan.payment_id}"
    return {
        "payment_id": plan.payment_id, "loan_id": plan.before.loan_id,
        "on": plan.on.isoformat(), "reference": reference,
        "amount_minor": int(plan.history.payments[plan.payment_id].amount_minor),
        "reversing_entries": [
            {"of_entry": r.id, "debit": r.credit_account, "credit": r.debit_account,
             "amount_minor": r.amount_minor} for r in plan.mirrored],
        "replay_entries": [{"debit": d, "credit": c, "amount_minor": a}
                           for d, c, a in plan.adjustments],
        "reallocated_payments": sorted(plan.reallocated),
        "before": _loan_summary(plan.before.state),
        "after": _loan_summary(plan.after.state),
    }


def _loan_summary(state: LoanState) -> dict[str, Any]:
    return {"status": state.status.value, "days_past_due": state.days_past_due,
            "bucket": state.bucket, "principal_minor": state.principal_outstanding,
            "interest_minor": state.interest_receivable, "fee_minor": state.fee_receivable,
            "penalty_minor": state.penalty_receivable, "excess_minor": state.excess_paid,
            "recovered_minor": state.recovered}


def refuse_changed_loan(connection: Connection, record: LoanRecord) -> None:
    """Restructuring and relief are not part of the replay: refuse such loans by name."""
    loan_id = record.loan_id
    restructured = connection.execute(select(rt.restructures.c.id).where(
        rt.restructures.c.loan_id == loan_id, rt.restructures.c.status == "applied")
        .limit(1)).first()
    relieved = connection.execute(select(rt.relief_applications.c.loan_id).where(
        rt.relief_applications.c.loan_id == loan_id,
        rt.relief_applications.c.status != "offered").limit(1)).first()
    if restructured or relieved or record.state.relief_from is not None:
        raise Refused([Problem(
            "payment.reversal_after_restructure", f"loan {loan_id} was restructured or put "
            "under relief; reversing its payments by replay does not cover that yet, so "
            "correct it with a manual adjustment", field="target")])


def _term_candidates(state: LoanState, maturity: date) -> list[Term]:
    """Terms that may have produced a schedule maturing on ``maturity`` (the term is not
    stored; due-date rolling moves a maturity by a few days)."""
    start, rules = state.disbursed_on, state.rules
    days = (maturity - start).days
    if rules.type is LoanType.BULLET:
        return [Term(n, TermUnit.DAYS) for n in range(max(1, days - 7), days + 8)]
    if rules.frequency is Frequency.MONTHLY:
        months = (maturity.year - start.year) * 12 + maturity.month - start.month
        return [Term(n, TermUnit.MONTHS) for n in range(max(1, months - 1), months + 2)]
    step = 7 if rules.frequency is Frequency.WEEKLY else 14
    estimate = days // step
    return [Term(n * step // 7, TermUnit.WEEKS) for n in range(max(1, estimate - 1), estimate + 2)]


def booking_schedules(record: LoanRecord, product: Product | None,
                       calendar: BusinessCalendar | None) -> list[Schedule]:
    """Distinct schedules that match the loan's booked amounts and maturity date."""
    if product is None or calendar is None:
        return []
    rules, fee = record.state.rules, record.upfront_fee_minor
    financed = product.fee_mode is FeeMode.FINANCED
    amount = record.principal_minor - fee if financed else record.principal_minor
    found: list[Schedule] = []
    terms_tried = [parse_term(record.term)] if record.term else _term_candidates(
        record.state, record.maturity_date)  # loans booked before the term was stored
    for term in terms_tried:
        terms = LoanTerms(
            type=rules.type, currency=currency(record.currency), amount_minor=amount,
            annual_rate=rules.annual_rate, start=record.state.disbursed_on, term=term,
            frequency=rules.frequency, day_count=rules.day_count, rounding=rules.rounding,
            rate_basis=product.rate_basis, service_fee_minor=fee, fee_mode=product.fee_mode,
            periodic_fee_minor=rules.periodic_fee_minor, calendar=calendar,
            rolling=product.rolling)
        try:
            schedule = build_schedule(terms)
        except ValueError:
            continue
        booked = (schedule.principal_minor, schedule.disbursed_minor, schedule.maturity_date)
        if booked == (record.principal_minor, record.disbursed_minor, record.maturity_date) \
                and schedule not in found:
            found.append(schedule)
    return found


def same_loan(rebuilt: LoanState, stored: LoanState) -> bool:
    """Equal as stored: the loan row's servicing columns and the instalments."""
    return servicing_columns(rebuilt) == servicing_columns(stored) and \
        rebuilt.installments == stored.installments


Triple = tuple[str, str, int]


def transfers(events: tuple[ev.LoanEvent, ...]) -> list[Triple]:
    return [(p.debit.value, p.credit.value, p.amount_minor) for e in events for p in postings(e)]


def account_balances(transfers: Any) -> dict[str, int]:
    """Debits − credits per account, without the accounts that net to zero."""
    balances: dict[str, int] = {}
    for debit, credit, amount in transfers:
        balances[debit] = balances.get(debit, 0) + amount
        balances[credit] = balances.get(credit, 0) - amount
    return {account: value for account, value in balances.items() if value}


def _pair_net(transfers: Any) -> dict[tuple[str, str], int]:
    """Net amount per pair of accounts (positive: debit the first, credit the second)."""
    net: dict[tuple[str, str], int] = {}
    for debit, credit, amount in transfers:
        pair = (min(debit, credit), max(debit, credit))
        net[pair] = net.get(pair, 0) + (amount if debit == pair[0] else -amount)
    return net


def replay_adjustments(journal: tuple[JournalRow, ...], mirrored: tuple[JournalRow, ...],
                        after: Replayed) -> tuple[Triple, ...]:
    """Transfers that bring the journal, once the payment's own transfers are posted back,
    to the transfers of the rebuilt history (per pair of accounts)."""
    target = _pair_net(transfers(after.events))
    stored = _pair_net((r.debit_account, r.credit_account, r.amount_minor) for r in journal)
    back = _pair_net((r.credit_account, r.debit_account, r.amount_minor) for r in mirrored)
    result: list[Triple] = []
    for pair in sorted(set(target) | set(stored) | set(back)):
        amount = target.get(pair, 0) - stored.get(pair, 0) - back.get(pair, 0)
        if amount:
            debit, credit = pair if amount > 0 else (pair[1], pair[0])
            result.append((debit, credit, abs(amount)))
    return tuple(result)


_SPLIT = ("principal", "interest", "fee", "penalty", "excess")


def reallocated(history: LoanHistory, after: Replayed) -> dict[int, dict[str, int]]:
    """The new split of the remaining payments whose split the replay changed."""
    changed: dict[int, dict[str, int]] = {}
    for payment_id, allocation in after.allocations.items():
        row = history.payments[payment_id]
        values = {f"{name}_minor": getattr(allocation, f"{name}_minor") for name in _SPLIT}
        values["recovery_minor"] = row.amount_minor if payment_id in after.recoveries else 0
        if any(getattr(row, column) != value for column, value in values.items()):
            changed[payment_id] = values
    return changed
