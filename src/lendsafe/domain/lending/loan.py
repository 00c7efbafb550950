"""A loan being serviced: its state, and the pure transitions of close of business.

The state is an immutable value; every transition returns a new state and the events it
caused (which the ledger's posting rules turn into journal transfers). Definitions that
the set-based close of business in the database must reproduce exactly:

* ``last_closed`` is the last business date whose close of business ran for the loan; the
  open business date is ``last_closed + 1``.
* The *current* instalment is the first one whose due date is after ``last_closed``.
  Interest of the current instalment is recognised by close of business on date D up to
  ``base + half_up((interest_due − base) × (D − accrual_start) / (due − accrual_start))``;
  on its due date it is recognised in full, and its periodic fee falls due.
* Arrears on date D are the unpaid principal and interest of instalments due before D; days
  past due are D minus the oldest such due date. Penalty interest for day D is
  ``half_up(arrears × penalty_rate / 365)`` once days past due exceed the grace days.
* At ``charge_off_days`` past due every receivable is written off; an approved write-off
  override (:func:`write_off`) writes them off on the open business date the same way.
* A *relief window* ``[relief_from, relief_until]`` (mass relief, see
  ``lendsafe.domain.lending.relief``): on a day inside it no penalty interest accrues, and
  days inside it never count as days past due — days past due are D minus the oldest
  unpaid due date minus the relief days in between, so they stay frozen during the window
  and resume counting from the frozen value after it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from enum import Enum

from lendsafe.domain import events as ev
from lendsafe.domain.calendar import DayCount, Frequency
from lendsafe.domain.lending.delinquency import DEFAULT_BUCKETS, Bucket, bucket_for
from lendsafe.domain.lending.product import (
    DEFAULT_ALLOCATION,
    AllocationRule,
    LoanType,
    Prepayment,
)
from lendsafe.domain.lending.schedule import Schedule
from lendsafe.domain.money import Rounding, divide

PENALTY_RATE_SCALE = 1_000_000  # penalty rates are stored in parts per million


class LoanStatus(Enum):
    """Where a loan is in its life."""

    ACTIVE = "active"
    CLOSED = "closed"
    CHARGED_OFF = "charged_off"


class ServicingError(ValueError):
    """A servicing request that cannot be applied, with the reason and what to do."""


@dataclass(frozen=True)
class ServicingRules:
    """The product rules a loan keeps for its whole life (copied at booking)."""

    type: LoanType
    annual_rate: Decimal
    day_count: DayCount
    rounding: Rounding
    frequency: Frequency | None
    periodic_fee_minor: int
    penalty_rate_ppm: int  # annual penalty rate in parts per million
    grace_days: int
    charge_off_days: int
    prepayment: Prepayment
    allocation: AllocationRule = DEFAULT_ALLOCATION
    buckets: tuple[Bucket, ...] = DEFAULT_BUCKETS


@dataclass(frozen=True)
class InstallmentState:
    """An instalment with what fell due, what was recognised and what was paid."""

    seq: int
    period_start: date
    due_date: date
    principal_due: int
    interest_due: int
    fee_due: int
    principal_paid: int = 0
    interest_paid: int = 0
    fee_paid: int = 0
    interest_recognized: int = 0
    fee_recognized: int = 0

    @property
    def unpaid_principal_interest(self) -> int:
        """Principal and interest still owed on this instalment."""
        return self.principal_due - self.principal_paid + self.interest_due - self.interest_paid

    @property
    def settled(self) -> bool:
        """True when nothing is owed on this instalment."""
        return self.unpaid_principal_interest == 0 and self.fee_paid == self.fee_due


@dataclass(frozen=True)
class LoanState:
    """Everything about a loan that servicing changes."""

    loan_id: int
    status: LoanStatus
    disbursed_on: date
    rules: ServicingRules
    installments: tuple[InstallmentState, ...]
    last_closed: date
    accrual_start: date
    accrual_base: int = 0
    penalty_recognized: int = 0
    penalty_paid: int = 0
    excess_paid: int = 0
    recovered: int = 0
    days_past_due: int = 0
    bucket: str = "current"
    closed_on: date | None = None
    relief_from: date | None = None
    relief_until: date | None = None

    # -- derived balances (what the journal must show) -------------------------------
    @property
    def principal_outstanding(self) -> int:
        """Principal receivable."""
        if self.status is LoanStatus.CHARGED_OFF:
            return 0
        return sum(i.principal_due - i.principal_paid for i in self.installments)

    @property
    def interest_receivable(self) -> int:
        """Interest recognised and not yet paid."""
        if self.status is LoanStatus.CHARGED_OFF:
            return 0
        return sum(i.interest_recognized - i.interest_paid for i in self.installments)

    @property
    def fee_receivable(self) -> int:
        """Fees fallen due and not yet paid."""
        if self.status is LoanStatus.CHARGED_OFF:
            return 0
        return sum(i.fee_recognized - i.fee_paid for i in self.installments)

    @property
    def penalty_receivable(self) -> int:
        """Penalty interest recognised and not yet paid."""
        if self.status is LoanStatus.CHARGED_OFF:
            return 0
        return self.penalty_recognized - self.penalty_paid

    @property
    def open_date(self) -> date:
        """The business date on which the loan now takes payments."""
        return self.last_closed + timedelta(days=1)

    def current_index(self) -> int | None:
        """Index of the instalment whose interest is accruing, if any."""
        for index, installment in enumerate(self.installments):
            if installment.due_date > self.last_closed:
                return index
        return None

    def arrears_on(self, on: date) -> int:
        """Unpaid principal and interest of instalments due before ``on``."""
        return sum(i.unpaid_principal_interest for i in self.installments if i.due_date < on)

    def oldest_unpaid_due(self) -> date | None:
        """The due date of the oldest instalment with anything unpaid."""
        for installment in self.installments:
            if not installment.settled:
                return installment.due_date
        return None

    def in_relief(self, on: date) -> bool:
        """True when ``on`` lies in the loan's relief window."""
        if self.relief_from is None or self.relief_until is None:
            return False
        return self.relief_from <= on <= self.relief_until

    def relief_days(self, after: date, through: date) -> int:
        """Days d of the relief window with ``after < d <= through``."""
        if self.relief_from is None or self.relief_until is None:
            return 0
        first = max(after + timedelta(days=1), self.relief_from)
        last = min(through, self.relief_until)
        return max(0, (last - first).days + 1)

    def days_past_due_on(self, on: date) -> int:
        """Days past due on ``on`` (0 when nothing fell due unpaid before ``on``).

        Days inside the relief window do not count (frozen during it).
        """
        oldest = self.oldest_unpaid_due()
        if oldest is None or oldest >= on:
            return 0
        return (on - oldest).days - self.relief_days(oldest, on)


def open_loan(loan_id: int, on: date, schedule: Schedule, rules: ServicingRules) -> tuple[
    LoanState, list[ev.LoanEvent]
]:
    """A newly disbursed loan and its disbursement event."""
    rows = tuple(
        InstallmentState(
            seq=i.seq,
            period_start=i.period_start,
            due_date=i.due_date,
            principal_due=i.principal_minor,
            interest_due=i.interest_minor,
            fee_due=i.fee_minor,
        )
        for i in schedule.installments
    )
    state = LoanState(
        loan_id=loan_id,
        status=LoanStatus.ACTIVE,
        disbursed_on=on,
        rules=rules,
        installments=rows,
        last_closed=on - timedelta(days=1),
        accrual_start=rows[0].period_start,
    )
    fee = schedule.principal_minor - schedule.disbursed_minor
    event = ev.LoanDisbursed(loan_id, on, schedule.principal_minor, schedule.disbursed_minor, fee)
    return state, [event]


def interest_target(installment: InstallmentState, start: date, base: int, on: date) -> int:
    """Interest of ``installment`` recognised by close of business on ``on`` (half-up)."""
    length = (installment.due_date - start).days
    if length <= 0 or on >= installment.due_date:
        return installment.interest_due
    elapsed = max(0, (on - start).days)
    remaining = installment.interest_due - base
    return base + divide(remaining * elapsed, length, Rounding.HALF_UP)


def daily_penalty(arrears_minor: int, penalty_rate_ppm: int) -> int:
    """Penalty interest for one day on ``arrears_minor`` (half-up, 365-day year)."""
    return divide(arrears_minor * penalty_rate_ppm, 365 * PENALTY_RATE_SCALE, Rounding.HALF_UP)


def close_day(state: LoanState, on: date) -> tuple[LoanState, list[ev.LoanEvent]]:
    """Close of business for one loan on ``on`` (the reference for the set-based batch)."""
    if on != state.open_date:
        raise ServicingError(
            f"loan {state.loan_id}: close of business must run for {state.open_date}, "
            f"not {on}; run the missing dates in order"
        )
    if state.status is not LoanStatus.ACTIVE:
        return replace(state, last_closed=on), []
    events: list[ev.LoanEvent] = []
    state = _accrue_penalty(state, on, events)
    state = _accrue_interest(state, on, events)
    state = replace(state, last_closed=on)
    days = state.days_past_due_on(on)
    state = replace(state, days_past_due=days, bucket=bucket_for(days, state.rules.buckets))
    if days >= state.rules.charge_off_days:
        state = _charge_off(state, on, events)
    return state, events


def _accrue_penalty(state: LoanState, on: date, events: list[ev.LoanEvent]) -> LoanState:
    if state.in_relief(on) or state.days_past_due_on(on) <= state.rules.grace_days:
        return state
    amount = daily_penalty(state.arrears_on(on), state.rules.penalty_rate_ppm)
    if amount <= 0:
        return state
    events.append(ev.PenaltyAccrued(state.loan_id, on, amount))
    return replace(state, penalty_recognized=state.penalty_recognized + amount)


def _accrue_interest(state: LoanState, on: date, events: list[ev.LoanEvent]) -> LoanState:
    index = state.current_index()
    if index is None:
        return state
    current = state.installments[index]
    target = interest_target(current, state.accrual_start, state.accrual_base, on)
    delta = target - current.interest_recognized
    if delta > 0:
        events.append(ev.InterestAccrued(state.loan_id, on, delta))
        current = replace(current, interest_recognized=target)
    if on == current.due_date:
        fee = current.fee_due - current.fee_recognized
        if fee > 0:
            events.append(ev.FeeCharged(state.loan_id, on, fee))
        current = replace(current, fee_recognized=current.fee_due)
    state = _with_installment(state, index, current)
    if on >= current.due_date and index + 1 < len(state.installments):
        following = state.installments[index + 1]
        state = replace(
            state, accrual_start=following.period_start, accrual_base=following.interest_recognized
        )
    return state


def write_off(state: LoanState, on: date) -> tuple[LoanState, list[ev.LoanEvent]]:
    """Write every receivable off on the open business date ``on`` (an approved override).

    The same transition as a charge-off at ``charge_off_days``; days past due and the bucket
    stay as they were, and close of business leaves the loan alone from then on.
    """
    if state.status is not LoanStatus.ACTIVE:
        raise ServicingError(
            f"loan {state.loan_id} is {state.status.value}; only an active loan is written off"
        )
    if on != state.open_date:
        raise ServicingError(
            f"a write-off is made on the open business date {state.open_date}, not {on}"
        )
    events: list[ev.LoanEvent] = []
    return _charge_off(state, on, events), events


def _charge_off(state: LoanState, on: date, events: list[ev.LoanEvent]) -> LoanState:
    events.append(
        ev.LoanChargedOff(
            state.loan_id,
            on,
            principal_minor=state.principal_outstanding,
            interest_minor=state.interest_receivable,
            fee_minor=state.fee_receivable,
            penalty_minor=state.penalty_receivable,
        )
    )
    return replace(state, status=LoanStatus.CHARGED_OFF)


def _with_installment(state: LoanState, index: int, row: InstallmentState) -> LoanState:
    rows = list(state.installments)
    rows[index] = row
    return replace(state, installments=tuple(rows))
