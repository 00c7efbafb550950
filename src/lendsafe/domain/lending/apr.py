"""The disclosed annualised rate (APR) of a dated cash-flow stream.

Three methods, all solved exactly in :mod:`decimal` arithmetic (no floats):

``reg-z``
    The actuarial method of Appendix J to 12 CFR 1026 (Regulation Z): the unit-period
    of (b)(4), the counting of full unit-periods and fractions of (b)(5), simple interest
    for the fraction of a unit-period (b)(6), the general equation (b)(8), and the
    single-advance single-payment rules (b)(4)(ii), (b)(5)(vi) and (b)(5)(vii).
    APR = unit-period rate × unit-periods per year (b)(1).

``irr``
    The internal rate of return ``i`` per unit-period solving
    ``Σ amount_k · (1 + i) ** -τ_k = 0`` where ``τ_k = t_k + f_k`` is the (fractional)
    number of unit-periods from the first advance, measured exactly as Appendix J (b)(5)
    measures them; reported as ``i × periods per year``.

``irr-compound``
    The same ``i``, reported as the effective annual rate ``(1 + i) ** periods − 1``.

See docs/concepts/apr.md for the conventions, the sources and the worked examples.

Rounding rule: the unit-period rate is solved to better than 1e-30 (absolute, in a
40-digit context); every Decimal in :class:`AprResult` is then computed from that
unrounded solution and quantised *independently* to 10 decimal places, ROUND_HALF_EVEN.
"""

from __future__ import annotations

import calendar
import datetime
import decimal
import enum
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import pairwise

__all__ = [
    "AprError",
    "AprResult",
    "CashFlow",
    "Method",
    "UnitPeriod",
    "annual_rate",
    "infer_unit_period",
]

_PRECISION = 40
_PLACES = Decimal("1E-10")
_ZERO = Decimal(0)
_ONE = Decimal(1)
# Newton/bisection stop when a step is below this (absolute, on the unit-period rate).
_STEP_TOLERANCE = Decimal("1E-32")
_MAX_ITERATIONS = 400
# The largest unit-period rate searched for (1e12 = 1e14 % per unit-period).
_MAX_RATE = Decimal("1E12")


def _context() -> decimal.Context:
    return decimal.Context(
        prec=_PRECISION,
        rounding=decimal.ROUND_HALF_EVEN,
        Emax=999_999,
        Emin=-999_999,
        traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
    )


class AprError(ValueError):
    """The cash-flow stream has no annual rate; the message says what is wrong and what to do."""


@dataclass(frozen=True)
class CashFlow:
    """One dated amount: advances negative, repayments positive, in integer minor units."""

    on: datetime.date
    amount_minor: int

    def __post_init__(self) -> None:
        if isinstance(self.on, datetime.datetime) or not isinstance(self.on, datetime.date):
            raise AprError(
                f"cash flow date must be a datetime.date (not a datetime), got {self.on!r}"
            )
        if isinstance(self.amount_minor, bool) or not isinstance(self.amount_minor, int):
            raise AprError(
                "cash flow amount must be an int number of minor units (e.g. cents), "
                f"got {self.amount_minor!r}; convert money to minor units before calling"
            )


class UnitPeriod(enum.Enum):
    """The standard intervals of Appendix J (b)(3)(iii) that lendsafe supports."""

    DAY = "day"
    WEEK = "week"
    TWO_WEEKS = "2week"
    FOUR_WEEKS = "4week"
    SEMIMONTH = "semimonth"
    MONTH = "month"
    TWO_MONTHS = "2month"
    QUARTER = "quarter"
    SEMIYEAR = "semiyear"
    YEAR = "year"

    @property
    def periods_per_year(self) -> int:
        """Unit-periods per year, Appendix J (b)(5)(ii)-(v)."""
        return _PER_YEAR[self]


class Method(enum.Enum):
    REG_Z = "reg-z"
    IRR = "irr"
    IRR_COMPOUND = "irr-compound"


@dataclass(frozen=True)
class AprResult:
    """The solved rate, every figure quantised to 10 decimal places (ROUND_HALF_EVEN).

    ``annual_rate_nominal`` and ``annual_rate_compound`` are computed from the unrounded
    unit-period rate, so ``periodic_rate × periods_per_year`` can differ from
    ``annual_rate_nominal`` in the last place.  Rates are fractions: 0.0969 is 9.69 %.
    """

    method: Method
    unit_period: UnitPeriod
    periods_per_year: int
    periodic_rate: Decimal
    annual_rate_nominal: Decimal
    annual_rate_compound: Decimal
    annual_rate: Decimal


# --------------------------------------------------------------------------- unit periods

# (days per unit-period, or None) for day/week multiples; months per unit-period for
# month multiples; the semimonth is 15 days on the 30-day-month scale of (b)(5)(iii).
_WEEK_DAYS: dict[UnitPeriod, int] = {
    UnitPeriod.DAY: 1,
    UnitPeriod.WEEK: 7,
    UnitPeriod.TWO_WEEKS: 14,
    UnitPeriod.FOUR_WEEKS: 28,
}
_MONTHS: dict[UnitPeriod, int] = {
    UnitPeriod.MONTH: 1,
    UnitPeriod.TWO_MONTHS: 2,
    UnitPeriod.QUARTER: 3,
    UnitPeriod.SEMIYEAR: 6,
    UnitPeriod.YEAR: 12,
}
_PER_YEAR: dict[UnitPeriod, int] = {
    UnitPeriod.DAY: 365,
    UnitPeriod.WEEK: 52,
    UnitPeriod.TWO_WEEKS: 26,
    UnitPeriod.FOUR_WEEKS: 13,
    UnitPeriod.SEMIMONTH: 24,
    UnitPeriod.MONTH: 12,
    UnitPeriod.TWO_MONTHS: 6,
    UnitPeriod.QUARTER: 4,
    UnitPeriod.SEMIYEAR: 2,
    UnitPeriod.YEAR: 1,
}
# Nominal length in days, used only to order periods ((b)(4)(i)(A): the smaller wins a tie)
# and to round an average period to the nearest standard interval ((b)(4)(i)(B)).
_NOMINAL_DAYS: dict[UnitPeriod, Decimal] = {u: Decimal(365) / n for u, n in _PER_YEAR.items()}
_NOMINAL_DAYS.update({u: Decimal(d) for u, d in _WEEK_DAYS.items()})


# A period key: ("m", k) k whole months; ("w", k) k whole weeks; ("s", 1) a semimonth;
# ("d", n) n days that are none of those.
_PeriodKey = tuple[str, int]


def _key_days(key: _PeriodKey) -> Decimal:
    kind, n = key
    if kind == "m":
        return Decimal(365) * n / 12
    if kind == "w":
        return Decimal(7 * n)
    if kind == "s":
        return Decimal(365) / 24
    return Decimal(n)


def _key_to_unit(key: _PeriodKey) -> UnitPeriod | None:
    kind, n = key
    if kind == "m":
        return {
            1: UnitPeriod.MONTH,
            2: UnitPeriod.TWO_MONTHS,
            3: UnitPeriod.QUARTER,
            6: UnitPeriod.SEMIYEAR,
            12: UnitPeriod.YEAR,
        }.get(n)
    if kind == "w":
        return {1: UnitPeriod.WEEK, 2: UnitPeriod.TWO_WEEKS, 4: UnitPeriod.FOUR_WEEKS}.get(n)
    if kind == "s":
        return UnitPeriod.SEMIMONTH
    return UnitPeriod.DAY if n == 1 else None


def _describe_key(key: _PeriodKey) -> str:
    kind, n = key
    name = {"m": "month", "w": "week", "s": "semimonth", "d": "day"}[kind]
    return f"{n} {name}{'s' if n != 1 else ''}"


# ------------------------------------------------------------------------ calendar helpers


def _last_day(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


def _months_back(later: datetime.date, k: int, anchor_day: int) -> datetime.date:
    """The date k months before ``later``, on ``anchor_day`` (or that month's last day).

    Appendix J (b)(3)(iv): all months are equal; a month runs from a date to the same date
    of another month; for a series on the last day of each month, or on the 29th/30th,
    the last day of the shorter month stands for the scheduled day.
    """
    index = later.year * 12 + (later.month - 1) - k
    year, month = divmod(index, 12)
    month += 1
    return datetime.date(year, month, min(anchor_day, _last_day(year, month)))


@dataclass(frozen=True)
class _Span:
    """The interval from the start of the term to one date, per Appendix J (b)(5)."""

    days: int  # 24-hour intervals, (b)(5)(i)
    months: int  # full months measured back from the later date
    rest_days: int  # days from the start to the first full month


class _Calendar:
    """Measures intervals from the start of the term, honouring month-end series."""

    def __init__(self, start: datetime.date, advance_days: set[int], payment_days: set[int]):
        self.start = start
        self._days = {True: sorted(advance_days), False: sorted(payment_days)}

    def anchor(self, on: datetime.date, is_advance: bool) -> int:
        """The scheduled day of month that ``on`` stands for.

        A date on the last day of a short month stands for the largest day-of-month used
        by flows of the same kind (advances or repayments) that is at least its own day:
        Feb 28 in a series on the 30th stands for the 30th, in a month-end series for
        the 31st (Appendix J (b)(3)(iv)).  Any other date stands for itself.
        """
        if on.day != _last_day(on.year, on.month):
            return on.day
        candidates = [d for d in self._days[is_advance] if d >= on.day]
        return max(candidates, default=on.day)

    def span(self, on: datetime.date, is_advance: bool) -> _Span:
        start = self.start
        days = (on - start).days
        anchor = self.anchor(on, is_advance)
        months = (on.year - start.year) * 12 + (on.month - start.month)
        while months > 0 and _months_back(on, months, anchor) < start:
            months -= 1
        months = max(months, 0)
        rest = (_months_back(on, months, anchor) - start).days
        return _Span(days=days, months=months, rest_days=rest)

    def whole_months_between(
        self, earlier: datetime.date, later: datetime.date, is_advance: bool
    ) -> int | None:
        """k if ``later`` is exactly k (≥ 1) months after ``earlier``, else None."""
        anchor = self.anchor(later, is_advance)
        k = (later.year - earlier.year) * 12 + (later.month - earlier.month)
        if k >= 1 and _months_back(later, k, anchor) == earlier:
            return k
        return None


def _unit_time(span: _Span, unit: UnitPeriod) -> tuple[int, Decimal]:
    """(full unit-periods t, fraction f) per Appendix J (b)(5)(ii)-(iv); YEAR is in _Stream."""
    if unit in _WEEK_DAYS:  # (b)(5)(iv): days / days per unit-period
        per = _WEEK_DAYS[unit]
        t, r = divmod(span.days, per)
        return t, Decimal(r) / per
    # (b)(5)(ii) month and (b)(5)(iii) semimonth / multiple of a month: 30 days a month
    per = 15 if unit is UnitPeriod.SEMIMONTH else 30 * _MONTHS[unit]
    t, r = divmod(30 * span.months + span.rest_days, per)
    return t, Decimal(r) / per


# --------------------------------------------------------------------------- the stream


@dataclass(frozen=True)
class _Flow:
    on: datetime.date
    amount: int  # net amount on that date, non-zero


@dataclass(frozen=True)
class _Stream:
    flows: tuple[_Flow, ...]  # sorted by date, one per date, net non-zero
    start: datetime.date  # beginning of the term: the earliest advance
    calendar: _Calendar

    @property
    def advances(self) -> tuple[_Flow, ...]:
        return tuple(f for f in self.flows if f.amount < 0)

    @property
    def repayments(self) -> tuple[_Flow, ...]:
        return tuple(f for f in self.flows if f.amount > 0)

    def span(self, flow: _Flow) -> _Span:
        return self.calendar.span(flow.on, flow.amount < 0)

    def unit_time(self, flow: _Flow, unit: UnitPeriod) -> tuple[int, Decimal]:
        span = self.span(flow)
        if unit is UnitPeriod.YEAR:  # (b)(5)(v)
            t, rest_months = divmod(span.months, 12)
            if span.rest_days == 0:
                return t, Decimal(rest_months) / 12
            anchor = self.calendar.anchor(flow.on, flow.amount < 0)
            year_start = _months_back(flow.on, 12 * t, anchor)
            return t, Decimal((year_start - self.start).days) / 365
        return _unit_time(span, unit)


def prepare(flows: Sequence[CashFlow]) -> _Stream:
    """Check ``flows`` and order them into a stream that counts Appendix J unit-periods
    (shared with the fast disclosed-rate proof in ``origination.disclosure``)."""
    if isinstance(flows, CashFlow) or not isinstance(flows, Sequence):
        raise AprError("flows must be a sequence of CashFlow (a list or a tuple)")
    if len(flows) == 0:
        raise AprError("no cash flows: give at least one advance (negative) and one repayment")
    for position, flow in enumerate(flows):
        if not isinstance(flow, CashFlow):
            raise AprError(f"flows[{position}] is {type(flow).__name__}, not CashFlow")
    if all(f.amount_minor == 0 for f in flows):
        raise AprError("every cash flow amount is zero: there is nothing to take a rate of")
    if not any(f.amount_minor < 0 for f in flows):
        raise AprError(
            "no advance: the stream has no negative amount; advances (money paid to the "
            "borrower) must be negative and repayments positive"
        )
    if not any(f.amount_minor > 0 for f in flows):
        raise AprError(
            "no repayment: the stream has no positive amount; repayments (money paid by the "
            "borrower) must be positive and advances negative"
        )
    net: dict[datetime.date, int] = {}
    for flow in sorted(flows, key=lambda f: f.on):  # stable
        net[flow.on] = net.get(flow.on, 0) + flow.amount_minor
    merged = tuple(_Flow(on, amount) for on, amount in net.items() if amount != 0)
    if not any(f.amount < 0 for f in merged) or not any(f.amount > 0 for f in merged):
        raise AprError(
            "after adding up the flows that fall on the same date there is no advance left "
            "before a later repayment (or no repayment left): a same-day repayment cancels "
            "the advance; date each flow on the day it is paid"
        )
    first = merged[0]
    if first.amount > 0:
        raise AprError(
            f"a repayment of {first.amount} minor units on {first.on.isoformat()} comes before "
            "the first advance; the term begins at the first advance, so move the repayment "
            "to or after that date"
        )
    advanced = -sum(f.amount for f in merged if f.amount < 0)
    repaid = sum(f.amount for f in merged if f.amount > 0)
    if repaid < advanced:
        raise AprError(
            f"the repayments ({repaid} minor units) never cover the advances ({advanced}): "
            "the rate would be negative (a loss, down to -100 %) and no APR is disclosed for "
            "such a stream; check the signs and the amounts"
        )
    cal = _Calendar(
        first.on,
        {f.on.day for f in merged if f.amount < 0},
        {f.on.day for f in merged if f.amount > 0},
    )
    return _Stream(flows=merged, start=first.on, calendar=cal)


def _is_single_advance_single_payment(stream: _Stream) -> bool:
    return len(stream.advances) == 1 and len(stream.repayments) == 1


def _term_unit(stream: _Stream) -> tuple[UnitPeriod, int | None]:
    """For a single advance, single payment: the unit the term is measured in.

    Returns (MONTH, months) for a term under a year that is a whole number of months
    ((b)(5)(vi)), (DAY, None) for a term under a year that is not ((b)(5)(vii)), and
    (YEAR, None) for a term of a year or more ((b)(4)(ii): the unit-period is the term
    but no more than a year).
    """
    payment = stream.repayments[0]
    span = stream.span(payment)
    if span.months >= 12:
        return UnitPeriod.YEAR, None
    if span.rest_days == 0 and span.months > 0:
        return UnitPeriod.MONTH, span.months
    return UnitPeriod.DAY, None


def _period_key(
    stream: _Stream, earlier: datetime.date, later: datetime.date, is_advance: bool
) -> _PeriodKey:
    months = stream.calendar.whole_months_between(earlier, later, is_advance)
    if months is not None:
        return ("m", months)
    days = (later - earlier).days
    if days % 7 == 0:
        return ("w", days // 7)
    if 13 <= days <= 16:
        return ("s", 1)
    return ("d", days)


def _periods(stream: _Stream) -> list[_PeriodKey]:
    """The periods of Appendix J (b)(3)(i): between advances, between payments, and from
    the start of the term to the first payment (and to the first advance after it)."""
    keys: list[_PeriodKey] = []
    for group, is_advance in ((stream.advances, True), (stream.repayments, False)):
        dates = [stream.start, *[f.on for f in group]]
        for earlier, later in pairwise(dates):
            if later > earlier:
                keys.append(_period_key(stream, earlier, later, is_advance))
    return keys


def _infer(stream: _Stream) -> UnitPeriod:
    if _is_single_advance_single_payment(stream):
        return _term_unit(stream)[0]
    keys = _periods(stream)
    counts = Counter(keys)
    common = [k for k, c in counts.items() if c > 1]
    if common:
        # (b)(4)(i): the most frequent common period; (A) ties go to the smaller period.
        best = max(common, key=lambda k: (counts[k], -_key_days(k)))
        if _key_days(best) > 365:
            return UnitPeriod.YEAR  # "not to exceed 1 year"
        unit = _key_to_unit(best)
        if unit is None:
            raise AprError(
                f"the most frequent period between flows is {_describe_key(best)}, which is "
                "not a supported unit period ("
                + ", ".join(u.value for u in UnitPeriod)
                + "); pass unit_period explicitly"
            )
        return unit
    # (b)(4)(i)(B): no common period: the average period rounded to the nearest standard
    # interval, the lower one when equally near.
    average = sum((_key_days(k) for k in keys), _ZERO) / len(keys)
    ordered = sorted(UnitPeriod, key=lambda u: _NOMINAL_DAYS[u])
    return min(ordered, key=lambda u: (abs(_NOMINAL_DAYS[u] - average), _NOMINAL_DAYS[u]))


def infer_unit_period(flows: Sequence[CashFlow]) -> UnitPeriod:
    """The Appendix J (b)(4) unit-period of the stream.

    The most frequent common period (ties: the smaller); with no common period, the
    average period rounded to the nearest supported interval.  For a single advance and a
    single payment Appendix J makes the term itself the unit-period (capped at a year);
    that is not one of :class:`UnitPeriod`, so this returns the unit the term is counted
    in: MONTH for a whole number of months under a year, YEAR for a year or more, DAY
    otherwise (see :func:`annual_rate` for how reg-z reports such a term).
    """
    with decimal.localcontext(_context()):
        return _infer(prepare(flows))


# ------------------------------------------------------------------------------ solving

_Discount = Callable[[Decimal], tuple[Decimal, Decimal]]


def _regz_npv(terms: list[tuple[Decimal, int, Decimal]]) -> _Discount:
    """Σ a / ((1 + f·i)(1 + i)^t) and its derivative in i: Appendix J (b)(8)."""

    def npv(i: Decimal) -> tuple[Decimal, Decimal]:
        base = _ONE + i
        value = _ZERO
        slope = _ZERO
        for amount, t, f in terms:
            simple = _ONE + f * i
            d = amount / (simple * base**t)
            value += d
            slope -= d * (f / simple + t / base)
        return value, slope

    return npv


def _irr_npv(terms: list[tuple[Decimal, Decimal]]) -> _Discount:
    """Σ a · (1 + i)^-τ and its derivative in i."""

    def npv(i: Decimal) -> tuple[Decimal, Decimal]:
        base = _ONE + i
        log = base.ln()
        value = _ZERO
        slope = _ZERO
        for amount, tau in terms:
            d = amount if tau == 0 else amount * (-tau * log).exp()
            value += d
            slope -= d * tau / base
        return value, slope

    return npv


def _first_guess(terms: list[tuple[Decimal, Decimal]]) -> Decimal:
    """A simple-interest estimate of the rate per unit period, to start the search near it.

    (repaid − advanced) / advanced over the amount-weighted mean time of the repayments
    after the advances; only a starting point — the solver's bracket keeps it safe.
    """
    advanced = -sum((a for a, _ in terms if a < 0), _ZERO)
    repaid = sum((a for a, _ in terms if a > 0), _ZERO)
    if advanced <= 0 or repaid <= advanced:
        return Decimal("1E-6")
    mean_advance = sum((-a * t for a, t in terms if a < 0), _ZERO) / advanced
    mean_repayment = sum((a * t for a, t in terms if a > 0), _ZERO) / repaid
    span = mean_repayment - mean_advance
    if span <= 0:
        return Decimal("1E-6")
    return max(Decimal("1E-6"), (repaid - advanced) / advanced / span)


def _solve(npv: _Discount, guess: Decimal = Decimal("1E-6")) -> Decimal:
    """The rate in [0, _MAX_RATE] where npv changes sign, deterministically.

    npv(0) = Σ amounts ≥ 0 (checked by prepare).  The upper end of the bracket is found by
    doubling from 1e-6; the root is then polished by Newton steps kept inside the bracket,
    falling back to bisection whenever a Newton step would leave the bracket or would not
    halve the step before last (the "rtsafe" safeguard).  Stops when a step is below
    1e-32 × max(1, |rate|).
    """
    low = _ZERO
    f_low, _ = npv(low)
    if f_low == 0:
        return _ZERO
    # the simple-interest guess overstates a compound rate by well under 2×
    high = min(guess * 2, _MAX_RATE)
    f_high, _ = npv(high)
    while f_high > 0:
        if high >= _MAX_RATE:
            raise AprError(
                "no rate solves the equation below 1e14 % per unit period: the repayments are "
                "out of all proportion to the advances; check that the amounts are in minor "
                "units and the dates are right"
            )
        low, f_low = high, f_high
        high = min(high * 2, _MAX_RATE)
        f_high, _ = npv(high)
    if f_high == 0:
        return high
    # Invariant: npv(low) > 0 > npv(high).
    x = guess if low < guess < high else (low + high) / 2
    value, slope = npv(x)
    step_before = high - low
    step = step_before
    for _ in range(_MAX_ITERATIONS):
        if value == 0:
            return x
        if value > 0:
            low = x
        else:
            high = x
        newton = value / slope if slope != 0 else None
        if newton is not None and abs(newton) <= _STEP_TOLERANCE * max(_ONE, abs(x)):
            return x - newton
        use_newton = (
            newton is not None
            and low < x - newton < high
            and abs(2 * value) <= abs(step_before * slope)
        )
        step_before = step
        if newton is not None and use_newton:
            step = newton
            x = x - step
        else:
            step = (high - low) / 2
            x = low + step
        if abs(step) <= _STEP_TOLERANCE * max(_ONE, abs(x)):
            return x
        value, slope = npv(x)
    raise AprError("the rate did not converge; please report this stream")  # pragma: no cover


# ------------------------------------------------------------------------------ results


def _q(value: Decimal) -> Decimal:
    digits = max(_PRECISION, value.adjusted() + 12)
    with decimal.localcontext(_context()) as ctx:
        ctx.prec = digits
        return value.quantize(_PLACES)


def _result(
    method: Method,
    unit: UnitPeriod,
    periodic: Decimal,
    nominal: Decimal,
    compound: Decimal,
) -> AprResult:
    annual = compound if method is Method.IRR_COMPOUND else nominal
    return AprResult(
        method=method,
        unit_period=unit,
        periods_per_year=unit.periods_per_year,
        periodic_rate=_q(periodic),
        annual_rate_nominal=_q(nominal),
        annual_rate_compound=_q(compound),
        annual_rate=_q(annual),
    )


def _single_payment_regz(stream: _Stream) -> AprResult | None:
    """Appendix J (b)(4)(ii), (b)(5)(vi), (b)(5)(vii): the term is the unit-period.

    Returns None for a term of a year or more, which is solved with a one-year unit-period
    by the general equation.
    """
    unit, months = _term_unit(stream)
    if unit is UnitPeriod.YEAR:
        return None
    advance, payment = stream.advances[0], stream.repayments[0]
    term_rate = Decimal(payment.amount) / Decimal(-advance.amount) - _ONE
    if months is not None:  # unit is MONTH
        units_in_term = Decimal(months)
        per_year = Decimal(12) / months  # (b)(5)(vi): 12 / months in the term
    else:
        units_in_term = Decimal((payment.on - advance.on).days)
        per_year = Decimal(365) / units_in_term  # (b)(5)(vii): 365 / days in the term
    nominal = term_rate * per_year
    # Reported per MONTH / DAY so periods_per_year stays an integer: the rate per month
    # (day) implied by the term rate, simple within the term.  The compound figure is that
    # of the Appendix J unit-period, the term: (1 + term rate) ** (terms per year) − 1.
    periodic = term_rate / units_in_term
    compound = (_ONE + term_rate) ** per_year - _ONE
    return _result(Method.REG_Z, unit, periodic, nominal, compound)


def annual_rate(
    flows: Sequence[CashFlow],
    method: Method = Method.REG_Z,
    unit_period: UnitPeriod | None = None,
) -> AprResult:
    """The annual rate of ``flows`` by ``method``.

    ``unit_period`` defaults to :func:`infer_unit_period`.  For ``reg-z`` with a single
    advance and a single payment and no explicit ``unit_period``, Appendix J makes the
    term the unit-period: the APR is the term rate × 12 / months (term a whole number of
    months under a year) or × 365 / days (other terms under a year); the result then
    reports ``unit_period`` MONTH or DAY with ``periodic_rate`` = term rate / months (or
    days) so that ``annual_rate_nominal = periodic_rate × periods_per_year`` still holds,
    and ``annual_rate_compound = (1 + term rate) ** (365 / days or 12 / months) − 1``.
    Terms of a year or more use a one-year unit-period.  An explicit ``unit_period``
    always uses the general equation with that unit-period.

    Raises :class:`AprError` for a stream with no advance, no repayment, only zero
    amounts, repayments that do not cover the advances, a repayment before the first
    advance, or no solution.
    """
    if not isinstance(method, Method):
        raise AprError(
            f"method must be a Method ({', '.join(m.value for m in Method)}), got {method!r}"
        )
    if unit_period is not None and not isinstance(unit_period, UnitPeriod):
        raise AprError(
            "unit_period must be a UnitPeriod ("
            + ", ".join(u.value for u in UnitPeriod)
            + f") or None, got {unit_period!r}"
        )
    with decimal.localcontext(_context()):
        stream = prepare(flows)
        if (
            method is Method.REG_Z
            and unit_period is None
            and _is_single_advance_single_payment(stream)
        ):
            single = _single_payment_regz(stream)
            if single is not None:
                return single
        unit = unit_period if unit_period is not None else _infer(stream)
        times = [(Decimal(f.amount), *stream.unit_time(f, unit)) for f in stream.flows]
        if method is Method.REG_Z:
            npv = _regz_npv([(a, t, f) for a, t, f in times])
        else:
            npv = _irr_npv([(a, t + f) for a, t, f in times])
        i = _solve(npv, _first_guess([(a, t + f) for a, t, f in times]))
        per_year = unit.periods_per_year
        nominal = i * per_year
        compound = (_ONE + i) ** per_year - _ONE
        return _result(method, unit, i, nominal, compound)
