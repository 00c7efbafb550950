"""Changing a live loan: conversion, deferral, extension, re-amortisation, re-ageing, rate
reduction, due-date change and waivers — pure functions from a state to a new state.

Every change happens on the loan's open business date P (``state.open_date``). Terms:

* *past* instalments are due before P; the *head* is the current instalment (the first
  due on or after P, whose interest is accruing); the *tail* follows it.
* The *restart* R = max(last closed date, accrual start): interest recognised by close of
  business through R is kept; new interest runs from R. The head's rate for the rest of
  its period is its full-period rate prorated by actual days (as accrual and prepayment
  do), so a rebuild with nothing changed changes no interest.
* A rebuilt schedule merges the head (keeping its paid and recognised amounts) with the
  first new period; principal is amortised by the loan's shape (annuity, equal principal,
  interest-only) over the *amortising* rows, interest = balance × rate × year fraction
  rounded by the product rule, the last row absorbs rounding.
* *Carried* interest — recognised and unpaid on rows that are rebuilt or cleared — moves,
  still recognised (the journal is untouched), onto the first new row, which is the
  current instalment (a later prepayment rebuilds the rows after the current one from the
  balance alone, so recognised amounts never sit there). Carried *fees* are capitalised
  (``FeeCapitalised``: a payoff of the current row never collects fees not yet due).
  An extension fee falls due with the next instalment and is recognised on its due date. Overdue
  *principal* is spread evenly over the remaining rows, rounded DOWN to the policy's
  multiple with the remainder on the last (Apache Fineract's re-amortisation with
  multiples of 1.00: 125.00 over two rows → 62.00 + 63.00).
* Holiday interest (deferral): *waived* (never charged, so nothing is posted), *accrued*
  (charged later, spread over the rows after the holiday, recognised as they accrue; a
  prepayment during the holiday rebuilds those rows and drops it) or *capitalised* (added
  to principal now: ``InterestCapitalised``, income earned now). Interest recognised to
  the change date is capitalised under every policy, so nothing falls due in a holiday.
* Waivers forgive recognised amounts (fees oldest first; penalty) and post them to an
  expense account; nothing else changes the principal owed except capitalisation.

Eligibility is data (``data/restructuring.toml``, see :class:`RestructuringPolicy`); a
refused change raises :class:`~lendsafe.domain.problems.Refused` naming the rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Any

from lendsafe.domain import events as ev
from lendsafe.domain import restructure_events as rev
from lendsafe.domain.calendar import Frequency
from lendsafe.domain.lending.apr import CashFlow, Method, UnitPeriod, annual_rate
from lendsafe.domain.lending.delinquency import bucket_for
from lendsafe.domain.lending.loan import InstallmentState, LoanState, LoanStatus, ServicingRules
from lendsafe.domain.lending.product import LoanType
from lendsafe.domain.lending.schedule import annuity_payment
from lendsafe.domain.money import Rounding, divide, round_fraction
from lendsafe.domain.problems import Problem, Refused

Row = InstallmentState
UNIT_FOR_FREQUENCY = {
    Frequency.MONTHLY: UnitPeriod.MONTH,
    Frequency.BIWEEKLY: UnitPeriod.TWO_WEEKS,
    Frequency.WEEKLY: UnitPeriod.WEEK,
}


class ChangeKind(StrEnum):
    """The kinds of change to a live loan."""

    CONVERSION = "instalment-conversion"
    DEFERRAL = "deferral"
    EXTENSION = "extension"
    REAMORTISATION = "re-amortisation"
    REAGEING = "re-ageing"
    RATE_REDUCTION = "rate-reduction"
    DUE_DATE_CHANGE = "due-date-change"
    FEE_WAIVER = "fee-waiver"
    PENALTY_WAIVER = "penalty-waiver"


class HolidayInterest(StrEnum):
    """What happens to interest during a payment holiday."""

    CAPITALISED = "capitalised"
    ACCRUED = "accrued"
    WAIVED = "waived"


@dataclass(frozen=True)
class ChangeRequest:
    """What is asked; which fields matter depends on the kind (others are ignored)."""

    kind: ChangeKind
    count: int = 0  # deferral: instalments; extension: periods; re-ageing/conversion: rows
    days: int = 0  # single-period extension: days added to the due date
    fee_minor: int = 0  # extension fee (charged now, due with the next instalment)
    amount_minor: int | None = None  # waivers (None: everything recognised and unpaid)
    annual_rate: Decimal | None = None  # rate reduction, conversion
    first_due: date | None = None  # re-ageing, conversion, due-date change
    frequency: Frequency | None = None  # re-ageing, conversion
    holiday_interest: HolidayInterest | None = None  # deferral (None: the policy's)


@dataclass(frozen=True)
class KindPolicy:
    """Eligibility and limits of one kind of change (from ``restructuring.toml``)."""

    kind: ChangeKind
    enabled: bool = True
    max_per_loan: int = 1
    min_days_between: int = 0
    buckets: frozenset[str] = frozenset()  # empty: any bucket
    loan_types: frozenset[LoanType] = frozenset()  # empty: any type
    count_max: int = 0
    days_max: int = 0
    fee_max_minor: int = 0
    amount_max_minor: int = 0  # 0: no cap (waivers)
    rate_floor: Decimal = Decimal(0)
    holiday_interest: HolidayInterest = HolidayInterest.CAPITALISED
    approval: bool = True
    approval_above_minor: int | None = None  # waivers: approval only above this amount
    credit_flag: str = "forbearance"  # what credit reporting is told: forbearance | none
    spread_multiple_minor: int = 1  # re-amortisation: shares in multiples of this


@dataclass(frozen=True)
class RestructuringPolicy:
    """All kinds' policies and the limit across kinds."""

    kinds: Mapping[ChangeKind, KindPolicy]
    changes_max: int = 4
    source: str = ""


@dataclass(frozen=True)
class ChangeHistory:
    """Earlier changes of the loan: (kind, date) pairs."""

    changes: tuple[tuple[ChangeKind, date], ...] = ()

    def count(self, kind: ChangeKind) -> int:
        """How many changes of ``kind`` the loan had."""
        return sum(1 for k, _ in self.changes if k is kind)

    def last(self, kind: ChangeKind) -> date | None:
        """The date of the latest change of ``kind``."""
        dates = [d for k, d in self.changes if k is kind]
        return max(dates) if dates else None


@dataclass(frozen=True)
class Disclosure:
    """The remaining plan's cost: −the balance financed on the open date (unpaid principal
    plus interest and fees already recognised), +each later instalment's unpaid total."""

    annual_rate_disclosed: Decimal
    financed_minor: int
    total_repayable_minor: int
    maturity_date: date | None

    @property
    def total_cost_minor(self) -> int:
        """What the plan costs beyond the balance it finances."""
        return self.total_repayable_minor - self.financed_minor


@dataclass(frozen=True)
class Restructured:
    """A computed change: before and after, events, disclosures, approval and reporting."""

    request: ChangeRequest
    on: date
    before: LoanState
    after: LoanState
    events: tuple[ev.LoanEvent, ...]
    disclosure_before: Disclosure
    disclosure_after: Disclosure
    needs_approval: bool
    credit_flag: str


# --------------------------------------------------------------------------- policy data


def _minor(value: Any) -> int:
    return int(Decimal(str(value)) * 100)


def load_policy(mapping: Mapping[str, Any]) -> RestructuringPolicy:
    """Build the policy from parsed TOML (amounts as major-unit strings, 2 decimals)."""
    kinds: dict[ChangeKind, KindPolicy] = {}
    for name, raw in mapping.get("kind", {}).items():
        kind = ChangeKind(name)
        above = raw.get("approval_above")
        kinds[kind] = KindPolicy(
            kind=kind, enabled=bool(raw.get("enabled", True)),
            max_per_loan=int(raw.get("max_per_loan", 1)),
            min_days_between=int(raw.get("min_days_between", 0)),
            buckets=frozenset(str(b) for b in raw.get("buckets", [])),
            loan_types=frozenset(LoanType(t) for t in raw.get("loan_types", [])),
            count_max=int(raw.get("count_max", 0)), days_max=int(raw.get("days_max", 0)),
            fee_max_minor=_minor(raw.get("fee_max", "0")),
            amount_max_minor=_minor(raw.get("amount_max", "0")),
            rate_floor=Decimal(str(raw.get("rate_floor", "0"))),
            holiday_interest=HolidayInterest(raw.get("holiday_interest", "capitalised")),
            approval=bool(raw.get("approval", True)),
            approval_above_minor=None if above is None else _minor(above),
            credit_flag=str(raw.get("credit_flag", "forbearance")),
            spread_multiple_minor=_minor(raw.get("spread_multiple", "0.01")),
        )
    limits = mapping.get("limits", {})
    return RestructuringPolicy(kinds, int(limits.get("changes_max", 4)),
                               str(mapping.get("source", "")))


# --------------------------------------------------------------------------- eligibility


def _problem(kind: ChangeKind, rule: str, message: str, **figures: object) -> Problem:
    return Problem(f"restructure.{kind.value}.{rule}", message, field="kind",
                   figures={k: str(v) for k, v in figures.items()})


def eligibility_problems(state: LoanState, request: ChangeRequest, policy: RestructuringPolicy,
                         history: ChangeHistory, on: date) -> list[Problem]:
    """Every rule the request breaks (status, kind enabled, type, bucket, how often)."""
    kind = request.kind
    if state.status is not LoanStatus.ACTIVE:
        return [Problem("restructure.status", f"loan {state.loan_id} is "
                        f"{state.status.value}; only an active loan can be changed",
                        field="loan", figures={"status": state.status.value})]
    if on != state.open_date:
        return [Problem("restructure.business_date", f"changes apply on the open business "
                        f"date {state.open_date}, not {on}", field="on")]
    rule = policy.kinds.get(kind)
    if rule is None or not rule.enabled:
        return [_problem(kind, "disabled", f"{kind.value} is not offered by policy")]
    problems: list[Problem] = []
    if rule.loan_types and state.rules.type not in rule.loan_types:
        allowed = ", ".join(sorted(t.value for t in rule.loan_types))
        problems.append(_problem(kind, "loan_type", f"{kind.value} is for {allowed} loans; "
                                 f"this one is {state.rules.type.value}",
                                 loan_type=state.rules.type.value))
    if rule.buckets and state.bucket not in rule.buckets:
        problems.append(_problem(kind, "bucket", f"{kind.value} is allowed in buckets "
                                 f"{', '.join(sorted(rule.buckets))}; the loan is in "
                                 f"{state.bucket} ({state.days_past_due} days past due)",
                                 bucket=state.bucket, days_past_due=state.days_past_due))
    problems += _frequency_problems(kind, rule, policy, history, on)
    return problems


def _frequency_problems(kind: ChangeKind, rule: KindPolicy, policy: RestructuringPolicy,
                        history: ChangeHistory, on: date) -> list[Problem]:
    problems: list[Problem] = []
    if history.count(kind) >= rule.max_per_loan:
        problems.append(_problem(kind, "max_per_loan", f"a loan may have {kind.value} at most "
                                 f"{rule.max_per_loan} time(s); this one had "
                                 f"{history.count(kind)}", max=rule.max_per_loan))
    last = history.last(kind)
    if last is not None and (on - last).days < rule.min_days_between:
        problems.append(_problem(kind, "min_days_between", f"{kind.value} needs "
                                 f"{rule.min_days_between} days since the last one ({last})",
                                 last=last, min_days=rule.min_days_between))
    if len(history.changes) >= policy.changes_max:
        problems.append(Problem("restructure.changes_max", f"a loan may be changed at most "
                                f"{policy.changes_max} times; this one was changed "
                                f"{len(history.changes)} times", field="kind"))
    return problems


def _cap(kind: ChangeKind, name: str, value: int, limit: int, what: str) -> list[Problem]:
    if value < 1:
        return [_problem(kind, name, f"{what} must be at least 1, got {value}")]
    if value > limit:
        return [_problem(kind, name, f"{what} may be at most {limit}; {value} asked",
                         max=limit, asked=value)]
    return []


# --------------------------------------------------------------------------- the kernel


@dataclass(frozen=True)
class _Plan:
    """A rebuild of the future: new due dates, the shape and what moves."""

    dates: tuple[date, ...]
    rules: ServicingRules
    holidays: int = 0
    holiday_interest: HolidayInterest = HolidayInterest.WAIVED
    truncate_past: bool = False
    extra_fee_minor: int = 0


@dataclass
class _Moved:
    """Amounts taken off rows being cleared, to be put on new rows."""

    principal: int = 0
    interest: int = 0  # recognised, unpaid
    fee: int = 0  # recognised, unpaid
    events: list[ev.LoanEvent] = field(default_factory=list)


def split(state: LoanState) -> tuple[list[Row], Row | None, list[Row]]:
    """(past rows, the head — the current instalment — if any, the rows after it)."""
    index = state.current_index()
    rows = list(state.installments)
    if index is None:
        return rows, None, []
    return rows[:index], rows[index], rows[index + 1:]


def _clear(row: Row, moved: _Moved) -> Row:
    """The row cut down to what was paid; the unpaid, recognised rest goes to ``moved``."""
    moved.principal += row.principal_due - row.principal_paid
    moved.interest += row.interest_recognized - row.interest_paid
    moved.fee += row.fee_recognized - row.fee_paid
    return replace(row, principal_due=row.principal_paid, interest_due=row.interest_paid,
                   interest_recognized=row.interest_paid, fee_due=row.fee_paid,
                   fee_recognized=row.fee_paid)


def spread(amount: int, count: int, multiple: int = 1) -> list[int]:
    """``amount`` over ``count`` rows: each rounded DOWN to a multiple of ``multiple``
    (Fineract's "in multiples of"), the remainder on the last."""
    if count <= 0:
        return []
    each = divide(amount, count * multiple, Rounding.DOWN) * multiple
    return [each] * (count - 1) + [amount - each * (count - 1)]


def restart_date(state: LoanState) -> date:
    """Interest recognised through this date is kept; new interest runs from it."""
    return max(state.last_closed, state.accrual_start)


def _rates(rules: ServicingRules, starts: list[date], dates: tuple[date, ...],
           restart: date) -> list[Fraction]:
    rates = []
    for number, (start, due) in enumerate(zip(starts, dates, strict=True)):
        full = Fraction(rules.annual_rate) * rules.day_count.year_fraction(start, due)
        length = (due - start).days
        if number == 0 and start < restart:
            full = full * Fraction(max((due - restart).days, 0), length) if length > 0 else (
                Fraction(0))
        rates.append(full)
    return rates


def amortise(rules: ServicingRules, rates: list[Fraction], balance: int) -> list[tuple[int, int]]:
    """(principal, interest) per row for ``balance`` by the loan's shape; last absorbs."""
    payment = annuity_payment(balance, rates, rules.rounding) if (
        rules.type is LoanType.ANNUITY) else 0
    part = round_fraction(Fraction(balance, len(rates)), rules.rounding)
    parts: list[tuple[int, int]] = []
    for number, rate in enumerate(rates, start=1):
        interest = round_fraction(balance * rate, rules.rounding)
        if number == len(rates):
            principal = balance
        elif rules.type is LoanType.ANNUITY:
            principal = min(balance, max(payment - interest, 0))
        elif rules.type is LoanType.EQUAL_PRINCIPAL:
            principal = min(balance, part)
        else:
            principal = 0
        parts.append((principal, interest))
        balance -= principal
    return parts


def _rebuild(state: LoanState, plan: _Plan) -> tuple[LoanState, list[ev.LoanEvent]]:
    """Replace the head and tail by ``plan``; the cursor moves to the new first row."""
    past, head, tail = split(state)
    moved = _Moved()
    if plan.truncate_past:
        past = [_clear(row, moved) for row in past]
    for row in ([head, *tail] if head is not None else []):
        _clear(row, moved)
    restart = restart_date(state) if head is not None else state.last_closed
    first_start = head.period_start if head is not None else restart
    starts = [first_start, *plan.dates[:-1]]
    rates = _rates(plan.rules, starts, plan.dates, restart)
    _capitalise_fees(state, moved)
    balance, extra_interest = _holiday(state, plan, moved, rates)
    amortising = amortise(plan.rules, rates[plan.holidays:], balance)
    amortising += [(0, 0)] * (len(rates) - plan.holidays - len(amortising))
    parts = [(0, 0)] * plan.holidays + amortising
    rows = _new_rows(state, plan, head, past, starts, parts, moved, extra_interest)
    new_state = replace(state, installments=tuple(past + rows), rules=plan.rules,
                        accrual_start=restart, accrual_base=rows[0].interest_recognized)
    return new_state, moved.events


def _capitalise_fees(state: LoanState, moved: _Moved) -> None:
    """Recognised, unpaid fees of cleared rows join the principal (a payoff or prepayment
    of the current row never collects recognised fees, so they may not sit there)."""
    if moved.fee:
        moved.events.append(rev.FeeCapitalised(state.loan_id, state.open_date, moved.fee))
        moved.principal += moved.fee
        moved.fee = 0


def _holiday(state: LoanState, plan: _Plan, moved: _Moved,
             rates: list[Fraction]) -> tuple[int, int]:
    """(balance to amortise, interest to add to later rows) after the holiday policy."""
    balance = moved.principal
    moved.principal = 0
    if plan.holidays == 0:
        return balance, 0
    carried, moved.interest = moved.interest, 0  # interest to date: capitalised, not due
    interest = 0 if plan.holiday_interest is HolidayInterest.WAIVED else sum(
        round_fraction(balance * r, plan.rules.rounding) for r in rates[:plan.holidays])
    later = interest if plan.holiday_interest is HolidayInterest.ACCRUED else 0
    capitalised = carried + interest - later
    if capitalised:
        moved.events.append(rev.InterestCapitalised(state.loan_id, state.open_date,
                                                    capitalised, receivable_minor=carried))
    return balance + capitalised, later


def _new_rows(state: LoanState, plan: _Plan, head: Row | None, past: list[Row],
              starts: list[date], parts: list[tuple[int, int]], moved: _Moved,
              extra_interest: int) -> list[Row]:
    """Rows of the new future; carried amounts and the extra fee go on the first row (the
    current one: a later prepayment rebuilds the rows after it from the balance alone)."""
    later = [0] * plan.holidays + spread(extra_interest, len(parts) - plan.holidays)
    first_seq = head.seq if head is not None else (past[-1].seq + 1 if past else 1)
    rows = []
    for k, (principal, new_interest) in enumerate(parts):
        fee_new = state.rules.periodic_fee_minor if k >= plan.holidays else 0
        carried_i = moved.interest if k == 0 else 0
        extra_fee = plan.extra_fee_minor if k == 0 else 0
        base = head if (k == 0 and head is not None) else None
        paid_p = base.principal_paid if base else 0
        paid_i = base.interest_paid if base else 0
        paid_f = base.fee_paid if base else 0
        rows.append(Row(
            seq=first_seq + k, period_start=starts[k], due_date=plan.dates[k],
            principal_due=paid_p + principal, principal_paid=paid_p,
            interest_due=paid_i + new_interest + carried_i + later[k], interest_paid=paid_i,
            interest_recognized=paid_i + carried_i,
            fee_due=paid_f + fee_new + extra_fee, fee_paid=paid_f, fee_recognized=paid_f))
    return rows


# --------------------------------------------------------------------------- the kinds


def _future_dates(state: LoanState) -> list[date]:
    _, head, tail = split(state)
    return [r.due_date for r in ([head, *tail] if head is not None else [])]


def _extend_dates(dates: list[date], frequency: Frequency, count: int) -> tuple[date, ...]:
    last = dates[-1]
    return (*dates, *(frequency.nth_date(last, n) for n in range(1, count + 1)))


def _regular_dates(first: date, frequency: Frequency, count: int) -> tuple[date, ...]:
    return (first, *(frequency.nth_date(first, n) for n in range(1, count)))


def _need_future(state: LoanState, kind: ChangeKind) -> list[date]:
    dates = _future_dates(state)
    if not dates:
        raise Refused([_problem(kind, "no_future_instalments", "the loan has no instalment "
                                "due after today; use re-ageing or an extension")])
    return dates


def _frequency(state: LoanState, kind: ChangeKind) -> Frequency:
    if state.rules.frequency is None:
        raise Refused([_problem(kind, "loan_type", f"{kind.value} needs an instalment loan; "
                                "a single-period loan can be extended or converted")])
    return state.rules.frequency


def _deferral(state: LoanState, request: ChangeRequest, rule: KindPolicy
              ) -> tuple[LoanState, list[ev.LoanEvent]]:
    problems = _cap(request.kind, "count_max", request.count, rule.count_max,
                    "instalments deferred")
    frequency = _frequency(state, request.kind)
    dates = _need_future(state, request.kind)
    if problems:
        raise Refused(problems)
    policy = request.holiday_interest or rule.holiday_interest
    plan = _Plan(_extend_dates(dates, frequency, request.count), state.rules,
                 holidays=request.count, holiday_interest=policy)
    return _rebuild(state, plan)


def _extension(state: LoanState, request: ChangeRequest, rule: KindPolicy
               ) -> tuple[LoanState, list[ev.LoanEvent]]:
    if request.fee_minor < 0 or request.fee_minor > rule.fee_max_minor:
        raise Refused([_problem(request.kind, "fee_max", f"an extension fee may be 0 to "
                                f"{rule.fee_max_minor} minor units; {request.fee_minor} asked")])
    if state.rules.type is LoanType.BULLET:
        problems = _cap(request.kind, "days_max", request.days, rule.days_max, "days added")
        if problems:
            raise Refused(problems)
        return _move_single(state, request)
    problems = _cap(request.kind, "count_max", request.count, rule.count_max, "periods added")
    dates = _need_future(state, request.kind)
    if problems:
        raise Refused(problems)
    plan = _Plan(_extend_dates(dates, _frequency(state, request.kind), request.count),
                 state.rules, extra_fee_minor=request.fee_minor)
    return _rebuild(state, plan)


def _move_single(state: LoanState, request: ChangeRequest) -> tuple[LoanState, list[ev.LoanEvent]]:
    """A single-period loan's due date moves; interest stays; the fee falls due with it
    (recognised by close of business on the due date, like a periodic fee)."""
    rows = list(state.installments)
    index = len(rows) - 1
    row = rows[index]
    due = row.due_date + timedelta(days=request.days)
    if due <= state.open_date:
        raise Refused([_problem(request.kind, "days_max", f"the new due date {due} must be "
                                f"after the open business date {state.open_date}")])
    rows[index] = replace(row, due_date=due, fee_due=row.fee_due + request.fee_minor)
    start = max(state.last_closed, row.period_start)
    if state.current_index() == index:
        start = restart_date(state)
    return replace(state, installments=tuple(rows), accrual_start=start,
                   accrual_base=rows[index].interest_recognized), []


def _reamortise(state: LoanState, request: ChangeRequest, rule: KindPolicy
                ) -> tuple[LoanState, list[ev.LoanEvent]]:
    """Overdue amounts spread over the remaining instalments, dates kept."""
    past, head, tail = split(state)
    moved = _Moved()
    past = [_clear(row, moved) for row in past]
    if moved.principal + moved.interest + moved.fee == 0:
        raise Refused([_problem(request.kind, "nothing_overdue", "nothing is overdue")])
    _capitalise_fees(state, moved)
    future = [head, *tail] if head is not None else []
    if not future:
        raise Refused([_problem(request.kind, "no_future_instalments", "no instalment is "
                                "left to spread the overdue amount over; use re-ageing")])
    size, step = len(future), rule.spread_multiple_minor
    first_only = [1] + [0] * (size - 1)  # recognised amounts stay on the current row
    shares = zip(spread(moved.principal, size, step), [moved.interest * n for n in first_only],
                 [moved.fee * n for n in first_only], strict=True)
    rows = [replace(r, principal_due=r.principal_due + p, interest_due=r.interest_due + i,
                    interest_recognized=r.interest_recognized + i, fee_due=r.fee_due + f,
                    fee_recognized=r.fee_recognized + f)
            for r, (p, i, f) in zip(future, shares, strict=True)]
    added = rows[0].interest_recognized - future[0].interest_recognized
    return replace(state, installments=tuple(past + rows),
                   accrual_base=state.accrual_base + added), moved.events


def _reage(state: LoanState, request: ChangeRequest, rule: KindPolicy
           ) -> tuple[LoanState, list[ev.LoanEvent]]:
    problems = _cap(request.kind, "count_max", request.count, rule.count_max, "instalments")
    frequency = request.frequency or state.rules.frequency or Frequency.MONTHLY
    first = request.first_due or frequency.nth_date(state.open_date, 1)
    problems += _first_due_problems(state, request.kind, first, rule)
    if problems:
        raise Refused(problems)
    kind = LoanType.ANNUITY if state.rules.type is LoanType.BULLET else state.rules.type
    rules = replace(state.rules, type=kind, frequency=frequency)
    plan = _Plan(_regular_dates(first, frequency, request.count), rules, truncate_past=True)
    return _rebuild(state, plan)


def _first_due_problems(state: LoanState, kind: ChangeKind, first: date,
                        rule: KindPolicy) -> list[Problem]:
    if first <= state.open_date:
        return [_problem(kind, "first_due", f"the first due date {first} must be after the "
                         f"open business date {state.open_date}", first_due=first)]
    if rule.days_max and (first - state.open_date).days > rule.days_max:
        return [_problem(kind, "days_max", f"the first due date may be at most "
                         f"{rule.days_max} days ahead; {first} is further",
                         first_due=first, max=rule.days_max)]
    return []


def _convert(state: LoanState, request: ChangeRequest, rule: KindPolicy
             ) -> tuple[LoanState, list[ev.LoanEvent]]:
    problems = _cap(request.kind, "count_max", request.count, rule.count_max, "instalments")
    frequency = request.frequency or Frequency.MONTHLY
    first = request.first_due or frequency.nth_date(state.open_date, 1)
    problems += _first_due_problems(state, request.kind, first, rule)
    rate = state.rules.annual_rate if request.annual_rate is None else request.annual_rate
    if rate > state.rules.annual_rate:
        problems.append(_problem(request.kind, "rate", "a conversion may not raise the rate"))
    if problems:
        raise Refused(problems)
    rules = replace(state.rules, type=LoanType.ANNUITY, frequency=frequency, annual_rate=rate)
    plan = _Plan(_regular_dates(first, frequency, request.count), rules, truncate_past=True)
    return _rebuild(state, plan)


def _rate_reduction(state: LoanState, request: ChangeRequest, rule: KindPolicy
                    ) -> tuple[LoanState, list[ev.LoanEvent]]:
    rate = request.annual_rate
    if rate is None or not rule.rate_floor <= rate < state.rules.annual_rate:
        raise Refused([_problem(request.kind, "rate_floor", f"the new rate must be below "
                                f"{state.rules.annual_rate} and at least {rule.rate_floor}; "
                                f"{rate} asked", floor=rule.rate_floor)])
    dates = _need_future(state, request.kind)
    rules = replace(state.rules, annual_rate=rate)
    return _rebuild(state, _Plan(tuple(dates), rules))


def _due_date_change(state: LoanState, request: ChangeRequest, rule: KindPolicy
                     ) -> tuple[LoanState, list[ev.LoanEvent]]:
    dates = _need_future(state, request.kind)
    frequency = _frequency(state, request.kind)
    first = request.first_due
    if first is None or first <= state.open_date or abs((first - dates[0]).days) > rule.days_max:
        raise Refused([_problem(request.kind, "days_max", f"the new first due date must be "
                                f"after {state.open_date} and within {rule.days_max} days of "
                                f"{dates[0]}; {first} asked", max=rule.days_max)])
    plan = _Plan(_regular_dates(first, frequency, len(dates)), state.rules)
    return _rebuild(state, plan)


def _fee_waiver(state: LoanState, request: ChangeRequest, rule: KindPolicy
                ) -> tuple[LoanState, list[ev.LoanEvent]]:
    owed = state.fee_receivable
    amount = _waiver_amount(request, rule, owed, "fees")
    rows, left = [], amount
    for row in state.installments:
        take = min(left, row.fee_recognized - row.fee_paid)
        left -= take
        rows.append(replace(row, fee_due=row.fee_due - take,
                            fee_recognized=row.fee_recognized - take))
    event = rev.FeeWaived(state.loan_id, state.open_date, amount)
    return replace(state, installments=tuple(rows)), [event]


def _penalty_waiver(state: LoanState, request: ChangeRequest, rule: KindPolicy
                    ) -> tuple[LoanState, list[ev.LoanEvent]]:
    amount = _waiver_amount(request, rule, state.penalty_receivable, "penalty interest")
    event = rev.PenaltyWaived(state.loan_id, state.open_date, amount)
    return replace(state, penalty_recognized=state.penalty_recognized - amount), [event]


def _waiver_amount(request: ChangeRequest, rule: KindPolicy, owed: int, what: str) -> int:
    amount = owed if request.amount_minor is None else request.amount_minor
    if owed <= 0:
        raise Refused([_problem(request.kind, "nothing_owed", f"no {what} is owed")])
    if not 0 < amount <= owed:
        raise Refused([_problem(request.kind, "amount", f"a waiver of {what} must be "
                                f"positive and at most the {owed} owed; {amount} asked",
                                owed=owed, asked=amount)])
    if rule.amount_max_minor and amount > rule.amount_max_minor:
        raise Refused([_problem(request.kind, "amount_max", f"a waiver of {what} may be at "
                                f"most {rule.amount_max_minor} minor units; {amount} asked",
                                max=rule.amount_max_minor, asked=amount)])
    return amount


_HANDLERS = {
    ChangeKind.CONVERSION: _convert,
    ChangeKind.DEFERRAL: _deferral,
    ChangeKind.EXTENSION: _extension,
    ChangeKind.REAMORTISATION: _reamortise,
    ChangeKind.REAGEING: _reage,
    ChangeKind.RATE_REDUCTION: _rate_reduction,
    ChangeKind.DUE_DATE_CHANGE: _due_date_change,
    ChangeKind.FEE_WAIVER: _fee_waiver,
    ChangeKind.PENALTY_WAIVER: _penalty_waiver,
}


# --------------------------------------------------------------------------- entry point


def restructure(state: LoanState, request: ChangeRequest, policy: RestructuringPolicy,
                history: ChangeHistory, on: date,
                cost_cap: tuple[str, Decimal] | None = None) -> Restructured:
    """Compute a change on the open business date ``on`` (refused with named problems)."""
    problems = eligibility_problems(state, request, policy, history, on)
    if problems:
        raise Refused(problems)
    rule = policy.kinds[request.kind]
    after, events = _HANDLERS[request.kind](state, request, rule)
    after = _refresh(after)
    disclosure = disclose(after)
    if cost_cap is not None and disclosure.annual_rate_disclosed > cost_cap[1]:
        code, cap = cost_cap
        raise Refused([Problem(f"{code}.annual_cost_cap", f"{code} caps the annualised cost "
                               f"at {cap}; the changed plan costs "
                               f"{disclosure.annual_rate_disclosed}", field="kind",
                               figures={"cap": str(cap),
                                        "annual_rate": str(disclosure.annual_rate_disclosed)})])
    summary = rev.LoanRestructured(state.loan_id, on, request.kind.value,
                                   state.principal_outstanding, after.principal_outstanding)
    return Restructured(request, on, state, after, (summary, *events), disclose(state),
                        disclosure, _needs_approval(rule, events), rule.credit_flag)


def _needs_approval(rule: KindPolicy, events: list[ev.LoanEvent]) -> bool:
    if not rule.approval:
        return False
    if rule.approval_above_minor is None:
        return True
    waived = sum(e.amount_minor for e in events
                 if isinstance(e, rev.FeeWaived | rev.PenaltyWaived))
    return waived > rule.approval_above_minor


def _refresh(state: LoanState) -> LoanState:
    """Days past due and bucket as close of business on the last closed date would set."""
    days = state.days_past_due_on(state.last_closed)
    state = replace(state, days_past_due=days, bucket=bucket_for(days, state.rules.buckets))
    if all(r.settled for r in state.installments) and state.penalty_receivable == 0:
        state = replace(state, status=LoanStatus.CLOSED, closed_on=state.open_date)
    return state


# --------------------------------------------------------------------------- disclosure


def plan_flows(state: LoanState) -> list[CashFlow]:
    """The remaining plan as cash flows: −the balance it finances on the open date (unpaid
    principal, interest and fees already recognised, of rows due after the open date), then
    each such row's unpaid total on its due date (rows due by the open date excluded)."""
    on = state.open_date
    later = [r for r in state.installments if r.due_date > on]
    financed = sum(r.principal_due - r.principal_paid + r.interest_recognized - r.interest_paid
                   + r.fee_recognized - r.fee_paid for r in later)
    flows = [CashFlow(on, -financed)]
    for row in later:
        unpaid = (row.principal_due - row.principal_paid + row.interest_due - row.interest_paid
                  + row.fee_due - row.fee_paid)
        if unpaid > 0:
            flows.append(CashFlow(row.due_date, unpaid))
    return flows


def disclose(state: LoanState) -> Disclosure:
    """The disclosed annualised rate (IRR × periods a year, Regulation Z) of the plan."""
    flows = plan_flows(state)
    financed = -flows[0].amount_minor
    repayable = sum(f.amount_minor for f in flows[1:])
    maturity = flows[-1].on if len(flows) > 1 else None
    if financed <= 0 or repayable <= financed:
        return Disclosure(Decimal(0), financed, repayable, maturity)
    unit = None
    if state.rules.frequency is not None and len(flows) > 2:
        unit = UNIT_FOR_FREQUENCY[state.rules.frequency]
    result = annual_rate(flows, Method.REG_Z, unit)
    return Disclosure(result.annual_rate_nominal, financed, repayable, maturity)
