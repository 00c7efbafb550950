"""Loading and saving loan state, products and journal transfers (SQLAlchemy Core).

The Python servicing path reads a loan into a :class:`LoanState`, applies a pure transition,
and writes back the instalments and the loan's servicing columns, all derived from the
state by the same definitions the set-based close of business uses.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, select, update

from lendsafe.adapters.db import tables as t
from lendsafe.domain import events as ev
from lendsafe.domain.calendar import DayCount, Frequency, day_number, from_day_number
from lendsafe.domain.ledger.posting import postings
from lendsafe.domain.lending.delinquency import Bucket
from lendsafe.domain.lending.loan import (
    InstallmentState,
    LoanState,
    LoanStatus,
    ServicingRules,
)
from lendsafe.domain.lending.payments import HistoryItem
from lendsafe.domain.lending.product import (
    AllocationRule,
    LoanType,
    Prepayment,
)
from lendsafe.domain.money import Rounding


class NotFound(LookupError):
    """A record that does not exist (or that the caller may not see)."""


def rules_to_json(rules: ServicingRules) -> str:
    """Canonical JSON of servicing rules."""
    return json.dumps(
        {
            "type": rules.type.value,
            "annual_rate": str(rules.annual_rate),
            "day_count": rules.day_count.value,
            "rounding": rules.rounding.value,
            "frequency": rules.frequency.value if rules.frequency else None,
            "periodic_fee_minor": rules.periodic_fee_minor,
            "penalty_rate_ppm": rules.penalty_rate_ppm,
            "grace_days": rules.grace_days,
            "charge_off_days": rules.charge_off_days,
            "prepayment": rules.prepayment.value,
            "allocation": {
                "order": [f"{b}:{c}" for b, c in rules.allocation.order],
                "per_installment": rules.allocation.per_installment,
            },
            "buckets": [[b.code, b.min_days, b.max_days] for b in rules.buckets],
        },
        sort_keys=True,
    )


def rules_from_json(text: str) -> ServicingRules:
    """Inverse of :func:`rules_to_json`."""
    raw = json.loads(text)
    order = tuple(tuple(step.split(":")) for step in raw["allocation"]["order"])
    return ServicingRules(
        type=LoanType(raw["type"]),
        annual_rate=Decimal(raw["annual_rate"]),
        day_count=DayCount(raw["day_count"]),
        rounding=Rounding(raw["rounding"]),
        frequency=Frequency(raw["frequency"]) if raw["frequency"] else None,
        periodic_fee_minor=raw["periodic_fee_minor"],
        penalty_rate_ppm=raw["penalty_rate_ppm"],
        grace_days=raw["grace_days"],
        charge_off_days=raw["charge_off_days"],
        prepayment=Prepayment(raw["prepayment"]),
        allocation=AllocationRule(order, raw["allocation"]["per_installment"]),
        buckets=tuple(Bucket(c, lo, hi) for c, lo, hi in raw["buckets"]),
    )


def rules_id(connection: Connection, rules: ServicingRules) -> int:
    """The id of a stored copy of ``rules`` (shared by every loan with the same rules)."""
    text = rules_to_json(rules)
    digest = hashlib.sha256(text.encode()).hexdigest()
    found = connection.execute(select(t.servicing_rules.c.id).where(
        t.servicing_rules.c.digest == digest)).scalar()
    if found is not None:
        return int(found)
    result = connection.execute(insert(t.servicing_rules).values(digest=digest, rules=text))
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def servicing_columns(state: LoanState) -> dict[str, Any]:
    """The loan row's servicing columns, derived from the state."""
    index = state.current_index() if state.status is LoanStatus.ACTIVE else None
    current = state.installments[index] if index is not None else None
    oldest = state.oldest_unpaid_due()
    return {
        "status": state.status.value,
        "last_closed_day": day_number(state.last_closed),
        "cur_seq": current.seq if current else None,
        "cur_start_day": day_number(state.accrual_start) if current else None,
        "cur_due_day": day_number(current.due_date) if current else None,
        "cur_base_minor": state.accrual_base if current else 0,
        "cur_interest_due_minor": current.interest_due if current else 0,
        "cur_recognized_minor": current.interest_recognized if current else 0,
        "accrued_today_minor": 0,
        "penalty_today_minor": 0,
        "principal_outstanding_minor": state.principal_outstanding,
        "interest_receivable_minor": state.interest_receivable,
        "fee_receivable_minor": state.fee_receivable,
        "penalty_recognized_minor": state.penalty_recognized,
        "penalty_paid_minor": state.penalty_paid,
        "arrears_minor": state.arrears_on(state.open_date),
        "oldest_unpaid_due_day": day_number(oldest) if oldest else None,
        "days_past_due": state.days_past_due,
        "bucket": state.bucket,
        "excess_minor": state.excess_paid,
        "recovered_minor": state.recovered,
        "closed_on": state.closed_on,
        "relief_from_day": day_number(state.relief_from) if state.relief_from else None,
        "relief_until_day": day_number(state.relief_until) if state.relief_until else None,
    }


def installment_rows(loan_id: int, rows: Iterable[InstallmentState]) -> list[dict[str, Any]]:
    """Database rows for a loan's instalments."""
    return [
        {
            "loan_id": loan_id,
            "seq": r.seq,
            "period_start": r.period_start,
            "due_date": r.due_date,
            "start_day": day_number(r.period_start),
            "due_day": day_number(r.due_date),
            "principal_due_minor": r.principal_due,
            "interest_due_minor": r.interest_due,
            "fee_due_minor": r.fee_due,
            "principal_paid_minor": r.principal_paid,
            "interest_paid_minor": r.interest_paid,
            "fee_paid_minor": r.fee_paid,
            "interest_recognized_minor": r.interest_recognized,
            "fee_recognized_minor": r.fee_recognized,
        }
        for r in rows
    ]


@dataclass(frozen=True)
class LoanRecord:
    """A loan's stored facts beside its servicing state."""

    loan_id: int
    borrower_id: int
    product_id: str
    currency: str
    principal_minor: int
    disbursed_minor: int
    upfront_fee_minor: int
    annual_rate_disclosed: str
    maturity_date: date
    charged_off_on: date | None
    state: LoanState
    term: str | None = None  # as booked; None for loans booked before it was stored
    # the product's schedule-shaping fields as booked; None for loans booked before
    booking_terms: dict[str, str] | None = None


def _state_from_rows(row: Any, rows: Sequence[Any]) -> LoanState:
    installments = [
        InstallmentState(
            seq=r.seq,
            period_start=r.period_start,
            due_date=r.due_date,
            principal_due=r.principal_due_minor,
            interest_due=r.interest_due_minor,
            fee_due=r.fee_due_minor,
            principal_paid=r.principal_paid_minor,
            interest_paid=r.interest_paid_minor,
            fee_paid=r.fee_paid_minor,
            interest_recognized=(
                row.cur_recognized_minor if r.seq == row.cur_seq else r.interest_recognized_minor
            ),
            fee_recognized=r.fee_recognized_minor,
        )
        for r in rows
    ]
    start = from_day_number(row.cur_start_day) if row.cur_start_day is not None else (
        installments[0].period_start
    )
    return LoanState(
        loan_id=row.id,
        status=LoanStatus(row.status),
        disbursed_on=row.disbursed_on,
        rules=rules_from_json(row.rules_json),
        installments=tuple(installments),
        last_closed=from_day_number(row.last_closed_day),
        accrual_start=start,
        accrual_base=row.cur_base_minor,
        penalty_recognized=row.penalty_recognized_minor,
        penalty_paid=row.penalty_paid_minor,
        excess_paid=row.excess_minor,
        recovered=row.recovered_minor,
        days_past_due=row.days_past_due,
        bucket=row.bucket,
        closed_on=row.closed_on,
        relief_from=None if row.relief_from_day is None else from_day_number(row.relief_from_day),
        relief_until=(None if row.relief_until_day is None
                      else from_day_number(row.relief_until_day)),
    )


_LOAD_LOAN_PLAIN = select(t.loans, t.servicing_rules.c.rules.label("rules_json")).join(
    t.servicing_rules, t.servicing_rules.c.id == t.loans.c.rules_id).where(
    t.loans.c.id == bindparam("b_id"))
_LOAD_LOAN = {False: _LOAD_LOAN_PLAIN, True: _LOAD_LOAN_PLAIN.with_for_update(of=t.loans)}
_LOAD_INSTALLMENTS = select(t.installments).where(
    t.installments.c.loan_id == bindparam("b_loan")).order_by(t.installments.c.seq)


def load_loan(connection: Connection, loan_id: int, *, for_update: bool = False) -> LoanRecord:
    """Read a loan and its instalments (locking the loan row on PostgreSQL if asked)."""
    locking = for_update and connection.dialect.name == "postgresql"
    row = connection.execute(_LOAD_LOAN[locking], {"b_id": loan_id}).first()
    if row is None:
        raise NotFound(f"loan {loan_id} does not exist")
    rows = connection.execute(_LOAD_INSTALLMENTS, {"b_loan": loan_id}).all()
    return LoanRecord(
        loan_id=row.id,
        borrower_id=row.borrower_id,
        product_id=row.product_id,
        currency=row.currency,
        principal_minor=row.principal_minor,
        disbursed_minor=row.disbursed_minor,
        upfront_fee_minor=row.upfront_fee_minor,
        annual_rate_disclosed=row.annual_rate_disclosed,
        maturity_date=row.maturity_date,
        charged_off_on=row.charged_off_on,
        state=_state_from_rows(row, rows),
        term=row.term,
        booking_terms=None if row.booking_terms is None else json.loads(row.booking_terms),
    )


def save_state(connection: Connection, state: LoanState, *, was: LoanState | None,
               charged_off_on: date | None = None) -> None:
    """Write a loan's state back: servicing columns and (if changed) its instalments.

    ``was`` None rewrites every instalment. A loan charged off now gets ``charged_off_on``
    (default: its last closed date); a loan that is not charged off has none.
    """
    values = servicing_columns(state)
    if state.status is LoanStatus.CHARGED_OFF and (was is None or was.status != state.status):
        values["charged_off_on"] = charged_off_on or state.last_closed
    elif state.status is not LoanStatus.CHARGED_OFF:
        values["charged_off_on"] = None
    connection.execute(_save_loan_statement(tuple(values)),
                       {f"v_{name}": value for name, value in values.items()}
                       | {"b_id": state.loan_id})
    if was is None or was.installments != state.installments:
        rows = installment_rows(state.loan_id, state.installments)
        connection.execute(_DELETE_INSTALLMENTS, {"b_loan": state.loan_id})
        connection.execute(insert(t.installments), rows)


# Statements the servicing hot path runs thousands of times are built once: building an
# UPDATE of 25 columns and deriving its cache key cost more than executing it (a payment
# runs about twenty statements).
_SAVE_LOAN: dict[tuple[str, ...], Any] = {}
_DELETE_INSTALLMENTS = delete(t.installments).where(
    t.installments.c.loan_id == bindparam("b_loan"))


def _save_loan_statement(names: tuple[str, ...]) -> Any:
    """UPDATE of the loan row setting ``names`` (bound as ``v_<name>``) and the version."""
    statement = _SAVE_LOAN.get(names)
    if statement is None:
        values: dict[str, Any] = {name: bindparam(f"v_{name}") for name in names}
        values["version"] = t.loans.c.version + 1
        statement = update(t.loans).where(t.loans.c.id == bindparam("b_id")).values(values)
        _SAVE_LOAN[names] = statement
    return statement


def append_journal(
    connection: Connection,
    events: Iterable[ev.LoanEvent],
    reference: str | None = None,
) -> int:
    """Post the transfers of ``events`` to the journal; returns the number of entries."""
    rows = [
        {
            "business_day": day_number(event.on),
            "loan_id": event.loan_id,
            "kind": transfer.kind,
            "debit_account": transfer.debit.value,
            "credit_account": transfer.credit.value,
            "amount_minor": transfer.amount_minor,
            "reference": reference,
        }
        for event in events
        for transfer in postings(event)
    ]
    if rows:
        connection.execute(insert(t.journal), rows)
    return len(rows)


def trial_balance(connection: Connection, loan_id: int | None = None) -> dict[str, int]:
    """Balance per account (debits − credits) over the journal, optionally for one loan."""
    balances: dict[str, int] = {}
    for side, sign in ((t.journal.c.debit_account, 1), (t.journal.c.credit_account, -1)):
        query = select(side, func.coalesce(func.sum(t.journal.c.amount_minor), 0)).group_by(side)
        if loan_id is not None:
            query = query.where(t.journal.c.loan_id == loan_id)
        for account, total in connection.execute(query):
            balances[account] = balances.get(account, 0) + sign * int(total)
    return balances


def trial_balance_by_currency(connection: Connection) -> dict[str, dict[str, int]]:
    """Balance per account (debits − credits) per currency (the currency of each loan)."""
    balances: dict[str, dict[str, int]] = {}
    joined = t.journal.join(t.loans, t.loans.c.id == t.journal.c.loan_id)
    for side, sign in ((t.journal.c.debit_account, 1), (t.journal.c.credit_account, -1)):
        query = (select(t.loans.c.currency, side, func.sum(t.journal.c.amount_minor))
                 .select_from(joined).group_by(t.loans.c.currency, side))
        for code, account, total in connection.execute(query):
            accounts = balances.setdefault(code, {})
            accounts[account] = accounts.get(account, 0) + sign * int(total)
    return balances


def journal_entry_count(connection: Connection) -> int:
    """How many transfers the journal holds."""
    return int(connection.execute(select(func.count()).select_from(t.journal)).scalar_one())


PAYMENT_PREFIX = "payment:"
REVERSAL_PREFIX = "reversal:payment:"
WRITE_OFF_PREFIX = "write_off:loan:"


@dataclass(frozen=True)
class JournalRow:
    """One stored transfer of a loan."""

    id: int
    business_day: int
    kind: str
    debit_account: str
    credit_account: str
    amount_minor: int
    reference: str | None


@dataclass(frozen=True)
class LoanHistory:
    """What was done to a loan since booking, read from its payments and its journal."""

    items: tuple[HistoryItem, ...]  # payments not reversed and write-offs, in order
    reversed: frozenset[int]  # ids of reversed payments
    payments: dict[int, Any]  # every payment row by id
    journal: tuple[JournalRow, ...]  # every transfer of the loan, oldest first


def journal_rows(connection: Connection, loan_id: int) -> list[JournalRow]:
    """Every journal transfer of one loan, oldest first (through the loan index)."""
    j = t.journal.c
    rows = connection.execute(select(
        j.id, j.business_day, j.kind, j.debit_account, j.credit_account, j.amount_minor,
        j.reference).where(j.loan_id == loan_id).order_by(j.id)).all()
    return [JournalRow(*row) for row in rows]


def loan_history(connection: Connection, loan_id: int) -> LoanHistory:
    """The loan's payments and write-offs in the order they happened (business date, then
    the first journal transfer each posted); a payment with a ``reversal:payment:ID``
    transfer is reversed and left out of ``items``."""
    journal = journal_rows(connection, loan_id)
    first: dict[str, JournalRow] = {}
    for row in journal:
        if row.reference is not None:
            first.setdefault(row.reference, row)
    payments = {row.id: row for row in connection.execute(select(t.payments).where(
        t.payments.c.loan_id == loan_id).order_by(t.payments.c.id)).all()}
    reversed_ids = frozenset(int(ref.removeprefix(REVERSAL_PREFIX)) for ref in first
                             if ref.startswith(REVERSAL_PREFIX)
                             and ref.removeprefix(REVERSAL_PREFIX).isdigit())
    keyed: list[tuple[date, int, HistoryItem]] = []
    for payment_id, payment in payments.items():
        if payment_id not in reversed_ids:
            entry = first.get(f"{PAYMENT_PREFIX}{payment_id}")
            keyed.append((payment.received_on, entry.id if entry else 0,
                          HistoryItem(payment.received_on, payment_id, payment.amount_minor)))
    entry = first.get(f"{WRITE_OFF_PREFIX}{loan_id}")
    if entry is not None:
        on = from_day_number(entry.business_day)
        keyed.append((on, entry.id, HistoryItem(on, None)))
    keyed.sort(key=lambda k: (k[0], k[1]))
    return LoanHistory(tuple(k[2] for k in keyed), reversed_ids, payments, tuple(journal))
