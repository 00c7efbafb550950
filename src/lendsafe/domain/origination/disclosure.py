"""The disclosed rate of an instalment offer: solved in floats, proven, answered exactly.

:func:`lendsafe.domain.lending.quote.price` discloses ``annual_rate_nominal`` of the
Appendix J (regulation Z) equation, solved in 40-digit :mod:`decimal` arithmetic and rounded
to 10 places (ROUND_HALF_EVEN): ~0.3–0.5 ms an offer, most of a decision's CPU when the offer
is new. :func:`disclosed_rate` gives the same :class:`~decimal.Decimal` for an instalment
schedule (one advance at the start, positive instalments after it, the unit-period of the
payment frequency) in ~0.05 ms, or ``None`` when it cannot prove it (the caller then solves
exactly):

1. The unit-period times ``t + f`` of the instalments come from the APR module's own
   Appendix J (b)(5) counting (month-end series included), kept per start and due dates.
2. Newton's method in floats finds the periodic rate ``x``; its nominal rate ``x · k``
   (``k`` periods a year) rounds to ``m`` units of 10⁻¹⁰.
3. Proof that the exact root ``i*`` also gives ``m``: the equation's value
   ``N(i) = Σ P / ((1 + f i)(1 + i)^t) − D`` decreases in ``i`` (``i ≥ 0``, ``t + f > 0``), so
   ``N(a) > 0 > N(b)`` puts ``i*`` strictly between ``a`` and ``b``. ``a`` and ``b`` are
   floats checked (exactly, as fractions) to lie inside the rounding interval of ``m``,
   ``((m − ½)·10⁻¹⁰ / k, (m + ½)·10⁻¹⁰ / k)``, by a margin ``MARGIN`` of 10⁻²⁴ — far above the
   error of the 40-digit solution (a Newton step below 10⁻³² ends it). ``N`` is evaluated
   with IEEE-754 operations only (powers by repeated multiplication, no ``pow``), whose
   rounding error is at most ``γ = (2T + n + 16) · 2⁻⁵²`` times ``Σ |terms| + D`` (``T`` the
   largest ``t``, ``n`` the number of instalments; standard bounds ``γₙ = nu / (1 − nu)``
   for products and recursive sums, with room to spare); a sign counts only when ``|N|``
   exceeds that bound.

When a step fails (a payment of zero or on the start date, two on one day, rates at or
below zero, a root within the margin of a rounding boundary, a sign too close to call),
the answer is ``None``: never a different rate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date
from decimal import Decimal

from lendsafe.domain.lending.apr import CashFlow, UnitPeriod, prepare
from lendsafe.domain.lending.quote import UNIT_FOR_FREQUENCY
from lendsafe.domain.lending.schedule import LoanTerms, Schedule

PLACES = 10  # the disclosed rate's decimal places (apr._PLACES)
MARGIN = 10**24  # 1 / the distance kept from a rounding boundary, on the periodic rate
NEWTON_STEPS = 60
ERROR_FACTOR = 2.0**-52  # 2u, with u = 2⁻⁵³ the unit roundoff of a double
TIMES_CACHE_SIZE = 4_096
Times = tuple[tuple[int, float], ...]  # (whole unit-periods t, fraction f) per instalment
_times: dict[tuple[date, tuple[date, ...], str], Times] = {}


def disclosed_rate(terms: LoanTerms, schedule: Schedule) -> Decimal | None:
    """``price(terms).annual_rate_disclosed`` for ``schedule`` (built from ``terms``), or
    None when the fast path cannot prove it (see the module docstring)."""
    if terms.frequency is None:
        return None
    unit = UNIT_FOR_FREQUENCY[terms.frequency]
    disbursed = schedule.disbursed_minor
    items = schedule.installments
    amounts = [i.total_minor for i in items]
    dates = tuple(i.due_date for i in items)
    if disbursed <= 0 or not amounts or min(amounts) <= 0 or sum(amounts) <= disbursed \
            or max(max(amounts), disbursed) >= 2**53:
        return None
    previous = terms.start
    for on in dates:
        if on <= previous:
            return None
        previous = on
    times = unit_times(terms.start, dates, unit)
    per_year = unit.periods_per_year
    flows = [(amount, t, f) for amount, (t, f) in zip(amounts, times, strict=True)]
    most = max(t for t, _ in times)
    root = _newton(flows, most, disbursed, _guess(flows, disbursed))
    if root is None or not root > 0:
        return None
    units = round(root * per_year * 10**PLACES)
    if units <= 0:
        return None
    # the rounding interval of ``units`` on the periodic rate, less the margin on each side:
    # (2 units ∓ 1) / scale ± 1 / MARGIN, as numerator / denominator over scale · MARGIN
    scale = 2 * 10**PLACES * per_year
    below = _float_at_least((2 * units - 1) * MARGIN + scale, scale * MARGIN)
    above = _float_at_most((2 * units + 1) * MARGIN - scale, scale * MARGIN)
    if below is None or above is None or not below < above:
        return None
    if _sign(flows, most, disbursed, below) > 0 and _sign(flows, most, disbursed, above) < 0:
        return Decimal(f"{units}E-{PLACES}")  # exact: no context rounding
    return None


def unit_times(start: date, dates: tuple[date, ...], unit: UnitPeriod) -> Times:
    """Appendix J (b)(5) times of repayments on ``dates`` after one advance on ``start``,
    counted by the APR module itself (kept: they depend on the dates only)."""
    key = (start, dates, unit.value)
    found = _times.get(key)
    if found is not None:
        return found
    stream = prepare([CashFlow(start, -1), *(CashFlow(on, 1) for on in dates)])
    counted = [stream.unit_time(flow, unit) for flow in stream.flows[1:]]
    times = tuple((t, float(f)) for t, f in counted)
    if len(_times) >= TIMES_CACHE_SIZE:
        _times.clear()
    _times[key] = times
    return times


def _guess(flows: Sequence[tuple[int, int, float]], disbursed: int) -> float:
    """Simple interest over the amount-weighted mean time (a starting point only)."""
    repaid = sum(amount for amount, _, _ in flows)
    mean = sum(amount * (t + f) for amount, t, f in flows) / repaid
    return max(1e-6, (repaid - disbursed) / disbursed / mean) if mean > 0 else 1e-6


def _newton(flows: Sequence[tuple[int, int, float]], most: int, disbursed: int,
            x: float) -> float | None:
    for _ in range(NEWTON_STEPS):
        base = 1.0 + x
        powers = _powers(base, most)
        value, slope = -float(disbursed), 0.0
        for amount, t, f in flows:
            simple = 1.0 + f * x
            term = amount / (simple * powers[t])
            value += term
            slope -= term * (f / simple + t / base)
        if slope >= 0 or not math.isfinite(value):
            return None
        step = value / slope
        x -= step
        if not x > -1.0:
            return None
        if abs(step) <= 1e-13 * (abs(x) + 0.01):  # near float precision (of 1 + x)
            return x
    return x  # only a candidate: the proof decides


def _powers(base: float, most: int) -> list[float]:
    """``base ** 0 … base ** most`` by repeated multiplication (each step rounded once)."""
    powers = [1.0]
    power = 1.0
    for _ in range(most):
        power *= base
        powers.append(power)
    return powers


def _sign(flows: Sequence[tuple[int, int, float]], most: int, disbursed: int, x: float) -> int:
    """The sign of N(x), or 0 when the float rounding error could change it."""
    powers = _powers(1.0 + x, most)
    value, size = -float(disbursed), float(disbursed)
    for amount, t, f in flows:
        term = amount / ((1.0 + f * x) * powers[t])
        value += term
        size += term
    bound = (2 * len(powers) + len(flows) + 16) * ERROR_FACTOR * size
    if value > bound:
        return 1
    if value < -bound:
        return -1
    return 0


def _float_at_least(numerator: int, denominator: int) -> float | None:
    """A float ``x ≥ numerator / denominator`` (``denominator > 0``) within a few ulps of it."""
    x = numerator / denominator
    for _ in range(4):
        n, d = x.as_integer_ratio()
        if n * denominator >= numerator * d:
            return x
        x = math.nextafter(x, math.inf)
    return None


def _float_at_most(numerator: int, denominator: int) -> float | None:
    """A float ``x ≤ numerator / denominator`` (``denominator > 0``) within a few ulps of it."""
    x = numerator / denominator
    for _ in range(4):
        n, d = x.as_integer_ratio()
        if n * denominator <= numerator * d:
            return x
        x = math.nextafter(x, -math.inf)
    return None
