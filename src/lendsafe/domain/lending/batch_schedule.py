"""Vectorised repayment schedules for many regular loans at once (numpy, exact to the cent).

``batch_schedules`` computes, for a whole portfolio in one call, the same instalments as
:func:`lendsafe.domain.lending.schedule.build_schedule` does loan by loan, for loans whose
periods all carry the same rate: monthly 30/360 starting on day 1–28 without rolling, weekly
or biweekly ACT/365F or ACT/360 without rolling, and single-period (bullet) loans.
:func:`regular_period` decides whether a :class:`LoanTerms` qualifies.

Exactness rules

* Rates are integer parts per 10⁹ of the annual rate (a Decimal with at most 9 decimals,
  see :func:`rate_ppb`). The periodic rate is the exact fraction
  ``num/den = ppb·period_days / (10⁹·year_days)`` (kept unreduced: np.gcd costs more than
  it saves; a ``den`` shared by all loans is used as a scalar).
* Interest = balance·num/den rounded half-up (or half-even) in int64 arithmetic: floor
  quotient and remainder, then +1 when ``2·remainder > den`` (or ``== den`` by the rule).
  When ``2·max(principal)·max(num) + max(den)`` could overflow int64 the balance is split as
  ``B = B1·2²⁰ + B0`` and ``B·num = den·(B1·u) + (B1·v + B0·num)`` with
  ``u, v = divmod(2²⁰·num, den)``; every term then stays below 4.3·10¹⁸ < 2⁶³ for the
  accepted bounds (principal ≤ 10¹², rate ≤ 10 = 1000 % a year, period_days ≤ 366,
  360 ≤ year_days ≤ 366). Inputs outside the bounds are refused with a ValueError.
* The annuity payment is first computed in float64 as ``P·r / −expm1(−n·log1p(r))``
  (relative error ≤ 4·10⁻¹⁶ measured over random inputs at the bounds; ~3·10⁻¹³ worst-case
  estimate for n ≤ 1200). A value ``x`` whose fractional part lies
  within ``1e-6 + 1e-11·x`` of one half is recomputed by the reference
  :func:`~lendsafe.domain.lending.schedule.annuity_payment` itself (Decimal, 40 digits), so
  every payment equals the reference's; all others are rounded as ``floor(x + 0.5)``.
  A zero rate gives the integer quotient P/n, rounded by the rule.

Output layout (:class:`BatchSchedules`): ragged, loan-major arrays. Loan ``i`` owns rows
``offsets[i]:offsets[i+1]``, in instalment order; ``loan`` and ``seq`` (1-based) repeat
that per row. Periodic fees and dates are not computed: the fee is a per-loan constant and
the dates follow from the start date and frequency.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import IntEnum
from fractions import Fraction

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lendsafe.domain.calendar import due_dates
from lendsafe.domain.lending.product import FeeMode, LoanType, RateBasis, installment_count
from lendsafe.domain.lending.schedule import LoanTerms, annuity_payment
from lendsafe.domain.money import Rounding

I64 = NDArray[np.int64]
F64 = NDArray[np.float64]

PPB = 10**9  # rates are integer parts per 10^9
MAX_PRINCIPAL_MINOR = 10**12
MAX_RATE_PPB = 10 * PPB  # 1000 % a year
MAX_COUNT = 1200
MAX_PERIOD_DAYS = 366
YEAR_DAYS_RANGE = (360, 366)
SPLIT_BITS = 20
INT64_LIMIT = 2**63 - 1
TIE_MARGIN_ABS = 1e-6
TIE_MARGIN_REL = 1e-11


class Kind(IntEnum):
    """Loan type codes used in the ``kind`` input array."""

    BULLET = 0
    ANNUITY = 1
    EQUAL_PRINCIPAL = 2
    INTEREST_ONLY = 3


KIND_OF_TYPE: dict[LoanType, Kind] = {
    LoanType.BULLET: Kind.BULLET,
    LoanType.ANNUITY: Kind.ANNUITY,
    LoanType.EQUAL_PRINCIPAL: Kind.EQUAL_PRINCIPAL,
    LoanType.INTEREST_ONLY: Kind.INTEREST_ONLY,
}


@dataclass(frozen=True)
class BatchSchedules:
    """Ragged, loan-major schedules: loan ``i`` owns rows ``offsets[i]:offsets[i + 1]``."""

    offsets: I64  # length n_loans + 1
    loan: I64  # per row: the loan's index in the input arrays
    seq: I64  # per row: instalment number, 1-based
    principal_minor: I64
    interest_minor: I64
    payment_minor: I64  # per loan: the annuity's level payment, 0 for other kinds

    def rows(self, index: int) -> tuple[I64, I64]:
        """(principal, interest) of loan ``index``'s instalments."""
        start, end = int(self.offsets[index]), int(self.offsets[index + 1])
        return self.principal_minor[start:end], self.interest_minor[start:end]


@dataclass(frozen=True)
class _Loans:
    """Validated per-loan inputs and the reduced periodic rate num/den."""

    principal: I64
    count: I64
    kind: I64
    num: I64
    den: I64
    half_even: bool
    split: bool  # whether balance·num may overflow int64 (use the split product)


@dataclass(frozen=True)
class _Rate:
    """Per-element rate terms for :func:`_interest`.

    On the split path ``x, y = divmod(2²⁰·num, den)``; otherwise ``x, y = 2·num, 2·den`` so
    that half-up interest is the single floor division ``(B·x + den) // y``. When every loan
    has the same ``year_days``, ``den`` (and ``y`` off the split path) are 0-d arrays shared by
    all loans: no per-row gather, and numpy divides by a scalar.
    """

    num: I64
    den: I64
    x: I64
    y: I64

    def take(self, index: I64 | slice, with_num: bool = True) -> _Rate:
        """The terms of a subset (fancy index) or a prefix (slice) of the loans.

        ``with_num=False`` skips gathering ``num``, which the half-up fast path never reads.
        """
        num = self.num[index] if with_num else self.num
        return _Rate(num, _pick(self.den, index), self.x[index], _pick(self.y, index))


def _pick(array: I64, index: I64 | slice) -> I64:
    """``array[index]``, or ``array`` itself when it is a 0-d value shared by all loans."""
    return array[index] if array.ndim else array



def rate_ppb(rate: Decimal | str) -> int:
    """An annual rate as integer parts per 10⁹, refusing more than 9 decimals or < 0."""
    value = Decimal(rate)
    scaled = value.scaleb(9)
    if not value.is_finite() or scaled != scaled.to_integral_value() or value < 0:
        raise ValueError(f"rate {rate!r} must be >= 0 with at most 9 decimals")
    return int(scaled)


def batch_schedules(
    principal_minor: ArrayLike,
    annual_rate_ppb: ArrayLike,
    count: ArrayLike,
    kind: ArrayLike,
    *,
    period_days: ArrayLike = 30,
    year_days: ArrayLike = 360,
    rounding: Rounding = Rounding.HALF_UP,
) -> BatchSchedules:
    """Schedules of many regular loans at once, equal to ``build_schedule`` to the cent.

    ``principal_minor`` is the principal owed (amount plus any financed fee), 1..10¹².
    ``annual_rate_ppb`` is the annual rate in parts per 10⁹ (0..10¹⁰, see :func:`rate_ppb`).
    ``count`` is the number of instalments (1..1200; bullet loans have exactly 1).
    ``kind`` holds :class:`Kind` codes. Each period's year fraction is
    ``period_days / year_days`` (scalars or per-loan arrays; 30/360 for monthly 30/360,
    7/365 for weekly ACT/365F, the term's days for a bullet, 360/360 for a whole-term
    rate). ``rounding`` is HALF_UP or HALF_EVEN. Inputs out of these bounds raise
    ValueError. Returns ragged loan-major arrays (see :class:`BatchSchedules`).
    """
    loans = _validate(principal_minor, annual_rate_ppb, count, kind, period_days, year_days,
                      rounding)
    offsets = np.zeros(len(loans.count) + 1, dtype=np.int64)
    np.cumsum(loans.count, out=offsets[1:])
    rate = _rate_terms(loans)
    payment = _payments(loans, rounding)
    loan = np.repeat(np.arange(len(loans.count), dtype=np.int64), loans.count)
    seq = _sequence_numbers(loans.count, offsets)
    balance, scratch = _closed_form_balances(loans, loan, seq)
    _annuity_balances(loans, offsets, payment, rate, balance)
    interest = _row_interest(balance, rate, loans, loan, out=scratch)
    principal = _paid(balance, offsets)
    return BatchSchedules(offsets, loan, seq, principal, interest, payment)


def _sequence_numbers(count: I64, offsets: I64) -> I64:
    """1, 2, …, count[i] for each loan, built in one array by a restarting cumulative sum."""
    seq = np.ones(int(offsets[-1]), dtype=np.int64)
    seq[offsets[1:-1]] = 1 - count[:-1]  # at each loan's first row, undo the previous loan
    return np.cumsum(seq, out=seq)


# --- validation ------------------------------------------------------------------------------


def _int_array(name: str, value: ArrayLike, size: int | None) -> I64:
    """``value`` as a 1-D int64 array (scalars broadcast to ``size``), refusing non-integers."""
    array = np.asarray(value)
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must be an integer array, not {array.dtype}")
    if size is None:
        if array.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional")
        return array.astype(np.int64, copy=False)
    if array.ndim > 1 or (array.ndim == 1 and array.shape[0] != size):
        raise ValueError(f"{name} must be a scalar or have one value per loan ({size})")
    return np.broadcast_to(array, (size,)).astype(np.int64)


def _check_range(name: str, array: I64, low: int, high: int) -> None:
    """Refuse loudly any value of ``array`` outside ``[low, high]``."""
    if array.size and (int(array.min()) < low or int(array.max()) > high):
        bad = array[(array < low) | (array > high)][:3].tolist()
        raise ValueError(f"{name} must lie in [{low}, {high}]; got e.g. {bad}")


def _validate(
    principal_minor: ArrayLike,
    annual_rate_ppb: ArrayLike,
    count: ArrayLike,
    kind: ArrayLike,
    period_days: ArrayLike,
    year_days: ArrayLike,
    rounding: Rounding,
) -> _Loans:
    if rounding not in (Rounding.HALF_UP, Rounding.HALF_EVEN):
        raise ValueError(f"batch schedules support HALF_UP and HALF_EVEN, not {rounding}")
    principal = _int_array("principal_minor", principal_minor, None)
    size = principal.shape[0]
    arrays = {
        "principal_minor": (principal, 1, MAX_PRINCIPAL_MINOR),
        "annual_rate_ppb": (_int_array("annual_rate_ppb", annual_rate_ppb, size), 0, MAX_RATE_PPB),
        "count": (_int_array("count", count, size), 1, MAX_COUNT),
        "kind": (_int_array("kind", kind, size), min(Kind), max(Kind)),
        "period_days": (_int_array("period_days", period_days, size), 1, MAX_PERIOD_DAYS),
        "year_days": (_int_array("year_days", year_days, size), *YEAR_DAYS_RANGE),
    }
    for name, (array, low, high) in arrays.items():
        _check_range(name, array, low, high)
    counts, kinds = arrays["count"][0], arrays["kind"][0]
    if np.any((kinds == Kind.BULLET) & (counts != 1)):
        raise ValueError("a bullet loan has exactly one instalment (count = 1)")
    num, den = _periodic_rate(arrays["annual_rate_ppb"][0], arrays["period_days"][0],
                              arrays["year_days"][0])
    split = size > 0 and 2 * int(principal.max()) * int(num.max()) + int(den.max()) > INT64_LIMIT
    return _Loans(principal, counts, kinds, num, den, rounding is Rounding.HALF_EVEN, split)


def _periodic_rate(ppb: I64, period_days: I64, year_days: I64) -> tuple[I64, I64]:
    """The exact periodic rate ppb·days / (10⁹·year_days) (not reduced: gcd costs time)."""
    num = ppb * period_days  # <= 10^10 * 366 < 2^63
    den = PPB * year_days  # <= 3.66e11
    return num, den


# --- exact interest ----------------------------------------------------------------------------


def _rate_terms(loans: _Loans) -> _Rate:
    """Per-loan rate terms: x, y = divmod(2²⁰·num, den) when split, else 2·num, 2·den."""
    shared = loans.den.size > 0 and int(loans.den.min()) == int(loans.den.max())
    den = loans.den[0, ...] if shared else loans.den  # 0-d when all loans share it
    if not loans.split:
        return _Rate(loans.num, den, loans.num * 2, den * 2)
    u, v = np.divmod(loans.num << SPLIT_BITS, den)  # 2^20 * 3.66e12 < 2^62
    return _Rate(loans.num, den, u, v)


def _row_interest(balance: I64, rate: _Rate, loans: _Loans, loan: I64, out: I64) -> I64:
    """Interest of every row; the half-up path gathers in place into ``out`` (no temporaries)."""
    if loans.split or loans.half_even:
        return _interest(balance, rate.take(loan), loans)
    np.take(rate.x, loan, out=out)
    out *= balance
    if rate.den.ndim:
        out += rate.den[loan]
        out //= rate.y[loan]
    else:
        out += rate.den
        out //= rate.y
    return out


def _interest(balance: I64, rate: _Rate, loans: _Loans, out: I64 | None = None) -> I64:
    """balance·num/den rounded by the rule, exactly, without int64 overflow."""
    if loans.split:
        return _split_interest(balance, rate, loans.half_even)
    if loans.half_even:
        quotient, remainder = np.divmod(balance * rate.num, rate.den)
        return _round_quotient(quotient, remainder, rate.den, half_even=True)
    interest = np.multiply(balance, rate.x, out=out)  # 2·B·num + den < 2^63 (see _validate)
    interest += rate.den
    interest //= rate.y
    return interest


def _split_interest(balance: I64, rate: _Rate, half_even: bool) -> I64:
    """Interest when balance·num may overflow: balance = high·2²⁰ + low."""
    high = balance >> SPLIT_BITS  # <= 953_674
    low = balance & ((1 << SPLIT_BITS) - 1)  # < 2^20
    # balance·num = den·(high·u) + (high·v + low·num); the bracket is < 4.2e18 < 2^63
    quotient, remainder = np.divmod(high * rate.y + low * rate.num, rate.den)
    quotient += high * rate.x
    return _round_quotient(quotient, remainder, rate.den, half_even)


def _round_quotient(quotient: I64, remainder: I64, den: I64, half_even: bool) -> I64:
    """Round quotient + remainder/den (0 <= remainder < den) half-up or half-even."""
    twice = remainder * 2
    up = (twice > den) | ((twice == den) & (quotient % 2 == 1)) if half_even else twice >= den
    rounded: I64 = quotient + up
    return rounded


# --- annuity payment ---------------------------------------------------------------------------


def _payments(loans: _Loans, rounding: Rounding) -> I64:
    """Per loan: the annuity's rounded level payment (float64 + exact near-tie fix), else 0."""
    payment = np.zeros(len(loans.count), dtype=np.int64)
    index = np.flatnonzero(loans.kind == Kind.ANNUITY)
    principal, count = loans.principal[index], loans.count[index]
    num, den = loans.num[index], loans.den[index]
    exact = _float_payments(principal, num, den, count)
    payment[index] = np.floor(exact + 0.5).astype(np.int64)
    zero = num == 0
    quotient, remainder = np.divmod(principal[zero], count[zero])
    payment[index[zero]] = _round_quotient(quotient, remainder, count[zero], loans.half_even)
    fraction = exact - np.floor(exact)
    near = ~zero & (np.abs(fraction - 0.5) < TIE_MARGIN_ABS + TIE_MARGIN_REL * exact)
    for i in index[near].tolist():
        rate = Fraction(int(loans.num[i]), int(loans.den[i]))
        payment[i] = annuity_payment(int(loans.principal[i]), [rate] * int(loans.count[i]),
                                     rounding)
    return payment


def _float_payments(principal: I64, num: I64, den: I64, count: I64) -> F64:
    """P·r / (1 − (1 + r)⁻ⁿ) in float64 (zero rates give P/n here; fixed by the caller)."""
    rate = num / den
    safe = np.where(rate > 0, rate, 1.0)
    annuity = -np.expm1(-count * np.log1p(safe)) / safe  # Σ (1 + r)^-k, accurate for tiny r
    result: F64 = np.where(rate > 0, principal / annuity, principal / count)
    return result


# --- balances and principal --------------------------------------------------------------------


def _closed_form_balances(loans: _Loans, loan: I64, seq: I64) -> tuple[I64, I64]:
    """Opening balance of every row for bullet, interest-only and equal-principal loans.

    Equal principal: part = P/n rounded; balance at seq s = max(P − (s − 1)·part, 0).
    Annuity rows get P here and are overwritten by :func:`_annuity_balances`. Also returns
    a scratch array of the same size for the caller to reuse.
    """
    quotient, remainder = np.divmod(loans.principal, loans.count)
    part = _round_quotient(quotient, remainder, loans.count, loans.half_even)
    part[loans.kind != Kind.EQUAL_PRINCIPAL] = 0
    balance = np.take(loans.principal + part, loan)
    scratch = np.take(part, loan)
    scratch *= seq
    balance -= scratch
    np.maximum(balance, 0, out=balance)
    return balance, scratch


def _annuity_balances(
    loans: _Loans, offsets: I64, payment: I64, rate: _Rate, balance: I64
) -> None:
    """Write the opening balance of every annuity row into ``balance`` (period by period).

    Annuity loans are sorted by count, longest first, so the loans still running at period
    t are a prefix of the order: each step works on contiguous slices.
    """
    index = np.flatnonzero(loans.kind == Kind.ANNUITY)
    order = index[np.argsort(-loans.count[index], kind="stable")]
    counts = loans.count[order]
    if not len(order):
        return
    running = np.searchsorted(-counts, -np.arange(int(counts[0])), side="left").tolist()
    base, pay = offsets[order], payment[order]
    current, sorted_rate = loans.principal[order], rate.take(order)
    scratch = np.empty_like(current)
    for step, size in enumerate(running):
        open_balance, work = current[:size], scratch[:size]
        balance[np.add(base[:size], step, out=work)] = open_balance
        interest = _interest(open_balance, sorted_rate.take(slice(0, size)), loans, out=work)
        np.subtract(pay[:size], interest, out=interest)
        np.clip(interest, 0, open_balance, out=interest)  # min(balance, max(pay − interest, 0))
        open_balance -= interest


def _paid(balance: I64, offsets: I64) -> I64:
    """Principal of each row: opening balance minus the next row's (the last row pays all)."""
    following = np.empty_like(balance)
    following[:-1] = balance[1:]
    following[offsets[1:] - 1] = 0
    return np.subtract(balance, following, out=following)


# --- from LoanTerms ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchInputs:
    """The arrays :func:`batch_schedules` takes, built from :class:`LoanTerms`."""

    principal_minor: I64
    annual_rate_ppb: I64
    count: I64
    kind: I64
    period_days: I64
    year_days: I64
    rounding: Rounding

    def schedules(self) -> BatchSchedules:
        """Run :func:`batch_schedules` on these inputs."""
        return batch_schedules(
            self.principal_minor, self.annual_rate_ppb, self.count, self.kind,
            period_days=self.period_days, year_days=self.year_days, rounding=self.rounding,
        )


def regular_period(terms: LoanTerms) -> tuple[int, int]:
    """(period_days, year_days) when every period of ``terms`` has the same rate.

    Raises ValueError for loans whose periods differ (e.g. monthly 30/360 starting on the
    31st, actual-day months, rolled due dates): those need the per-loan reference.
    """
    if terms.type is LoanType.BULLET:
        if terms.rate_basis is RateBasis.TERM:
            return 360, 360
        end = terms.calendar.roll(date.fromordinal(terms.start.toordinal() + terms.term.count),
                                  terms.rolling)
        return terms.day_count.days(terms.start, end), terms.day_count.year_days()
    if terms.frequency is None:
        raise ValueError("an instalment loan needs a frequency")
    count = installment_count(terms.term, terms.frequency)
    ends = due_dates(terms.start, terms.frequency, count, terms.calendar, terms.rolling)
    starts = [terms.start, *ends[:-1]]
    days = {terms.day_count.days(s, e) for s, e in zip(starts, ends, strict=True)}
    if len(days) != 1:
        raise ValueError(f"periods of {sorted(days)} days differ: not a regular schedule")
    return days.pop(), terms.day_count.year_days()


def inputs_from_terms(terms: Sequence[LoanTerms]) -> BatchInputs:
    """Batch inputs for a portfolio of regular loans sharing one rounding rule."""
    roundings = {t.rounding for t in terms}
    if len(roundings) > 1:
        raise ValueError("all loans of a batch must share one rounding rule")
    periods = [regular_period(t) for t in terms]  # also refuses a missing frequency
    counts = [_count(t) for t in terms]
    return BatchInputs(
        principal_minor=np.array([_principal(t) for t in terms], dtype=np.int64),
        annual_rate_ppb=np.array([rate_ppb(t.annual_rate) for t in terms], dtype=np.int64),
        count=np.array(counts, dtype=np.int64),
        kind=np.array([KIND_OF_TYPE[t.type] for t in terms], dtype=np.int64),
        period_days=np.array([p[0] for p in periods], dtype=np.int64),
        year_days=np.array([p[1] for p in periods], dtype=np.int64),
        rounding=roundings.pop() if roundings else Rounding.HALF_UP,
    )


def _principal(terms: LoanTerms) -> int:
    """Principal owed: the amount plus a financed service fee (as build_schedule does)."""
    if terms.fee_mode is FeeMode.FINANCED:
        return int(terms.amount_minor + terms.service_fee_minor)
    return int(terms.amount_minor)


def _count(terms: LoanTerms) -> int:
    """Number of instalments of a regular loan."""
    if terms.type is LoanType.BULLET or terms.frequency is None:
        return 1
    return installment_count(terms.term, terms.frequency)
