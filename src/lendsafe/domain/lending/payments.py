"""Payments: allocation by the product's order, prepayment, payoff quotes and recoveries.

On the open business date P:

* *past due* items are those of instalments due before P, plus all unpaid penalty;
  *due* items are those of the instalment due on P. They are paid in the product's
  allocation order (horizontal: instalment by instalment; vertical: component by
  component). Interest or a fee paid before close of business recognised it is
  recognised at payment.
* What remains is a *prepayment*: first the interest accrued to P on the current period,
  then principal not yet due; the rest of the schedule is rebuilt from P on the lower
  balance (reduce-term keeps the instalment and shortens the schedule; reduce-instalment
  keeps the dates and lowers the instalment). Anything beyond the whole debt is excess,
  owed back to the borrower (suspense).

Reversal (a bounced or mistaken payment) is *replay*, not an inverse allocation: the loan
becomes exactly what it would be had the payment never been received. :func:`replay`
rebuilds the loan from its booked state, applying on each business date the remaining
payments (and write-off overrides) of that date in the order they were made, then that
date's close of business, through the last closed date. Later payments are therefore
allocated again against the larger debt (they may now pay arrears instead of prepaying, or
become recoveries after an earlier charge-off), and the accruals, penalties, days past due
and charge-off of the days since follow from that. An exact inverse of one allocation is
wrong as soon as anything happened after the payment (penalty on the restored arrears, a
prepayment's rebuilt schedule, a later payment's allocation), so it is not used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta

from lendsafe.domain import events as ev
from lendsafe.domain.lending.delinquency import bucket_for
from lendsafe.domain.lending.loan import (
    InstallmentState,
    LoanState,
    LoanStatus,
    ServicingError,
    close_day,
    interest_target,
    write_off,
)
from lendsafe.domain.lending.reschedule import rebuild_future


@dataclass(frozen=True)
class Allocation:
    """How a payment was split."""

    principal_minor: int = 0
    interest_minor: int = 0
    fee_minor: int = 0
    penalty_minor: int = 0
    excess_minor: int = 0

    def add(self, component: str, amount: int) -> Allocation:
        """A copy with ``amount`` more on ``component``."""
        field = f"{component}_minor"
        return replace(self, **{field: getattr(self, field) + amount})

    @property
    def total_minor(self) -> int:
        """The whole payment."""
        return (
            self.principal_minor
            + self.interest_minor
            + self.fee_minor
            + self.penalty_minor
            + self.excess_minor
        )


class _Work:
    """A payment being allocated: mutable scratch state local to one call."""

    def __init__(self, state: LoanState, on: date, amount: int) -> None:
        self.state = state
        self.on = on
        self.rows = list(state.installments)
        self.remaining = amount
        self.allocation = Allocation()
        self.recognized_interest = 0
        self.recognized_fee = 0
        self.penalty_paid = state.penalty_paid
        self.restarted: tuple[int, date, int] | None = None

    def pay(self, index: int, component: str) -> None:
        """Pay as much of one component of one instalment as the money allows."""
        if self.remaining <= 0:
            return
        row = self.rows[index]
        owed = getattr(row, f"{component}_due") - getattr(row, f"{component}_paid")
        amount = min(owed, self.remaining)
        if amount <= 0:
            return
        changes = {f"{component}_paid": getattr(row, f"{component}_paid") + amount}
        changes.update(self._recognise(row, component, amount))
        self.rows[index] = replace(row, **changes)
        self.remaining -= amount
        self.allocation = self.allocation.add(component, amount)

    def _recognise(self, row: InstallmentState, component: str, amount: int) -> dict[str, int]:
        if component not in ("interest", "fee"):
            return {}
        recognized = getattr(row, f"{component}_recognized")
        paid_after = getattr(row, f"{component}_paid") + amount
        if paid_after <= recognized:
            return {}
        if component == "interest":
            self.recognized_interest += paid_after - recognized
        else:
            self.recognized_fee += paid_after - recognized
        return {f"{component}_recognized": paid_after}

    def pay_penalty(self) -> None:
        """Pay unpaid penalty interest (kept at loan level, treated as past due)."""
        owed = self.state.penalty_recognized - self.penalty_paid
        amount = min(owed, self.remaining)
        if amount > 0:
            self.penalty_paid += amount
            self.remaining -= amount
            self.allocation = self.allocation.add("penalty", amount)


def _bucket_indices(work: _Work, bucket: str) -> list[int]:
    if bucket == "past_due":
        return [i for i, r in enumerate(work.rows) if r.due_date < work.on and not r.settled]
    if bucket == "due":
        return [i for i, r in enumerate(work.rows) if r.due_date == work.on and not r.settled]
    return []  # in advance: handled as a prepayment


def _allocate_due_items(work: _Work) -> None:
    rule = work.state.rules.allocation
    buckets = list(dict.fromkeys(bucket for bucket, _ in rule.order))
    for bucket in buckets:
        components = [c for b, c in rule.order if b == bucket]
        indices = _bucket_indices(work, bucket)
        if rule.per_installment:
            _pay_horizontal(work, bucket, components, indices)
        else:
            _pay_vertical(work, bucket, components, indices)


def _pay_horizontal(work: _Work, bucket: str, components: list[str], indices: list[int]) -> None:
    if bucket == "past_due" and "penalty" in components:
        # penalty belongs to the loan, not to one instalment: pay it where the order says,
        # before the first instalment's later components
        first = components.index("penalty")
        if first == 0:
            work.pay_penalty()
    for index in indices:
        for component in components:
            if component != "penalty":
                work.pay(index, component)
    if bucket == "past_due":
        work.pay_penalty()


def _pay_vertical(work: _Work, bucket: str, components: list[str], indices: list[int]) -> None:
    for component in components:
        if component == "penalty":
            if bucket == "past_due":
                work.pay_penalty()
            continue
        for index in indices:
            work.pay(index, component)


def apply_payment(
    state: LoanState, payment_id: int, amount_minor: int, on: date
) -> tuple[LoanState, Allocation, list[ev.LoanEvent]]:
    """Apply a payment received on the open business date ``on``."""
    _check_payment(state, amount_minor, on)
    if state.status is LoanStatus.CHARGED_OFF:
        recovered = replace(state, recovered=state.recovered + amount_minor)
        event = ev.RecoveryReceived(state.loan_id, on, payment_id, amount_minor)
        return recovered, Allocation(excess_minor=0), [event]
    work = _Work(state, on, amount_minor)
    _allocate_due_items(work)
    _prepay(work)
    new_state = _finish(work)
    return new_state, work.allocation, _payment_events(work, payment_id)


def _check_payment(state: LoanState, amount_minor: int, on: date) -> None:
    if amount_minor <= 0:
        raise ServicingError(f"a payment must be a positive amount, got {amount_minor} minor")
    if on < state.disbursed_on:
        raise ServicingError(
            f"payment date {on} is before the loan was disbursed on {state.disbursed_on}"
        )
    if on != state.open_date:
        raise ServicingError(
            f"payments are posted on the open business date {state.open_date}, not {on}"
        )
    if state.status is LoanStatus.CLOSED:
        raise ServicingError(f"loan {state.loan_id} is closed; nothing is owed")


def _payment_events(work: _Work, payment_id: int) -> list[ev.LoanEvent]:
    loan, on = work.state.loan_id, work.on
    events: list[ev.LoanEvent] = []
    if work.recognized_interest:
        events.append(ev.InterestAccrued(loan, on, work.recognized_interest))
    if work.recognized_fee:
        events.append(ev.FeeCharged(loan, on, work.recognized_fee))
    a = work.allocation
    events.append(
        ev.PaymentAllocated(
            loan, on, payment_id, a.principal_minor, a.interest_minor, a.fee_minor,
            a.penalty_minor, a.excess_minor,
        )
    )
    return events


def _current_future_index(work: _Work) -> int | None:
    for index, row in enumerate(work.rows):
        if row.due_date > work.on:
            return index
    return None


def _prepay(work: _Work) -> None:
    index = _current_future_index(work)
    if work.remaining <= 0 or index is None:
        work.allocation = work.allocation.add("excess", max(work.remaining, 0))
        work.remaining = 0
        return
    row = work.rows[index]
    start, base = _accrual_cursor(work, index)
    to_date = interest_target(row, start, base, work.on)
    interest = min(max(to_date - row.interest_paid, 0), work.remaining)
    if interest:
        _settle_interest_to_date(work, index, interest)
    principal_left = sum(r.principal_due - r.principal_paid for r in work.rows[index:])
    principal = min(principal_left, work.remaining)
    if principal > 0:
        _prepay_principal(work, index, principal)
    work.allocation = work.allocation.add("excess", work.remaining)
    work.remaining = 0


def _accrual_cursor(work: _Work, index: int) -> tuple[date, int]:
    state = work.state
    if state.current_index() == index:
        return state.accrual_start, state.accrual_base
    row = work.rows[index]
    return row.period_start, row.interest_recognized


def _settle_interest_to_date(work: _Work, index: int, amount: int) -> None:
    row = work.rows[index]
    paid = row.interest_paid + amount
    recognized = max(row.interest_recognized, paid)
    work.recognized_interest += recognized - row.interest_recognized
    work.rows[index] = replace(
        row, interest_paid=paid, interest_recognized=recognized,
        interest_due=max(row.interest_due, paid),
    )
    work.remaining -= amount
    work.allocation = work.allocation.add("interest", amount)


def _prepay_principal(work: _Work, index: int, amount: int) -> None:
    row = work.rows[index]
    balance_before = sum(r.principal_due - r.principal_paid for r in work.rows[index:])
    balance_after = balance_before - amount
    work.remaining -= amount
    work.allocation = work.allocation.add("principal", amount)
    paid_row = replace(row, principal_paid=row.principal_paid + amount)
    future = rebuild_future(
        rules=work.state.rules,
        head=paid_row,
        tail=work.rows[index + 1:],
        balance_minor=balance_after,
        restart=work.on,
    )
    work.rows[index:] = future
    work.restarted = (index, work.on, paid_row.interest_paid)


def _finish(work: _Work) -> LoanState:
    state = replace(work.state, installments=tuple(work.rows), penalty_paid=work.penalty_paid)
    if work.restarted is not None:
        index, restart, base = work.restarted
        if state.current_index() == index:
            state = replace(state, accrual_start=restart, accrual_base=base)
    state = replace(state, excess_paid=state.excess_paid + work.allocation.excess_minor)
    # days past due as of the last close, seen with this payment: a loan brought up to date
    # is current at once (and close of business only revisits loans still in arrears)
    days = state.days_past_due_on(state.last_closed)
    state = replace(state, days_past_due=days, bucket=bucket_for(days, state.rules.buckets))
    if all(r.settled for r in state.installments) and state.penalty_receivable == 0:
        state = replace(state, status=LoanStatus.CLOSED, closed_on=work.on)
    return state


def payoff_amount(state: LoanState, on: date) -> Allocation:
    """What it takes to repay the loan in full on the open business date ``on``."""
    if state.status is not LoanStatus.ACTIVE:
        raise ServicingError(f"loan {state.loan_id} is {state.status.value}; no payoff quote")
    if on != state.open_date:
        raise ServicingError(f"payoff quotes are for the open business date {state.open_date}")
    quote = Allocation(penalty_minor=state.penalty_receivable)
    for index, row in enumerate(state.installments):
        if row.due_date <= on:
            quote = quote.add("principal", row.principal_due - row.principal_paid)
            quote = quote.add("interest", row.interest_due - row.interest_paid)
            quote = quote.add("fee", row.fee_due - row.fee_paid)
            continue
        quote = quote.add("principal", row.principal_due - row.principal_paid)
        if index == _first_future(state, on):
            start, base = (state.accrual_start, state.accrual_base)
            if state.current_index() != index:
                start, base = row.period_start, row.interest_recognized
            interest = interest_target(row, start, base, on) - row.interest_paid
            quote = quote.add("interest", max(interest, 0))
    return quote


def _first_future(state: LoanState, on: date) -> int | None:
    for index, row in enumerate(state.installments):
        if row.due_date > on:
            return index
    return None


# --------------------------------------------------------------------------- reversal


@dataclass(frozen=True)
class PaymentReversed(ev.LoanEvent):
    """A payment was reversed and the loan rebuilt without it (see the module docstring).

    Moves no money by itself: the reversing transfers are posted beside it.
    """

    payment_id: int
    amount_minor: int


@dataclass(frozen=True)
class HistoryItem:
    """Something done to a loan on an open business date, replayed in the order it happened.

    ``payment_id`` None is a write-off override; otherwise a payment of ``amount_minor``.
    """

    on: date
    payment_id: int | None
    amount_minor: int = 0


@dataclass(frozen=True)
class Replayed:
    """A loan rebuilt from booking: its state, every event since booking, each payment's
    allocation, which payments were recoveries, and when it was charged off (if it was)."""

    state: LoanState
    events: tuple[ev.LoanEvent, ...]
    allocations: Mapping[int, Allocation]
    recoveries: frozenset[int]
    charged_off_on: date | None


class _Replay:
    """Scratch state of one replay (local to :func:`replay`)."""

    def __init__(self, state: LoanState, opening: Sequence[ev.LoanEvent]) -> None:
        self.state = state
        self.events: list[ev.LoanEvent] = list(opening)
        self.allocations: dict[int, Allocation] = {}
        self.recoveries: set[int] = set()
        self.charged_off_on: date | None = None

    def apply(self, item: HistoryItem) -> None:
        if item.payment_id is None:
            self.state, events = write_off(self.state, item.on)
            self.charged_off_on = item.on
        else:
            if self.state.status is LoanStatus.CHARGED_OFF:
                self.recoveries.add(item.payment_id)
            self.state, allocation, events = apply_payment(
                self.state, item.payment_id, item.amount_minor, item.on
            )
            self.allocations[item.payment_id] = allocation
        self.events.extend(events)

    def close(self, on: date) -> None:
        self.state, events = close_day(self.state, on)
        if any(isinstance(e, ev.LoanChargedOff) for e in events):
            self.charged_off_on = on
        self.events.extend(events)


def replay(
    opened: LoanState,
    opening: Sequence[ev.LoanEvent],
    items: Sequence[HistoryItem],
    through: date,
) -> Replayed:
    """Rebuild a loan from its booked state ``opened`` (and the events of booking).

    On each business date from disbursement through ``through`` (the last closed date) the
    items of that date are applied in order, then that date's close of business; items on
    the open business date after ``through`` come last. Items must be in date order; an
    item that cannot be applied raises :class:`ServicingError`.
    """
    work = _Replay(opened, opening)
    index, on = 0, opened.open_date
    while True:
        while index < len(items) and items[index].on <= on:
            if items[index].on != on:
                raise ServicingError(
                    f"history item dated {items[index].on} is out of order (replaying {on})"
                )
            work.apply(items[index])
            index += 1
        if on > through:
            break
        work.close(on)
        on += timedelta(days=1)
    if index < len(items):
        raise ServicingError(f"history item dated {items[index].on} is after {on}")
    return Replayed(work.state, tuple(work.events), dict(work.allocations),
                    frozenset(work.recoveries), work.charged_off_on)
