"""Unit tests of lendsafe.domain.lending.apr: independent cross-checks, hand-worked loans,
unit-period inference and the errors.

Every expected figure here is computed in the test from first principles (closed forms
in Decimal/Fraction arithmetic, or numpy_financial), never copied from the code's output.
"""

from __future__ import annotations

import datetime as dt
import decimal
from decimal import Decimal
from fractions import Fraction

import numpy_financial as npf
import pytest

from lendsafe.domain.lending.apr import (
    AprError,
    AprResult,
    CashFlow,
    Method,
    UnitPeriod,
    annual_rate,
    infer_unit_period,
)

D = dt.date
HALF_ULP = Fraction(1, 2 * 10**10)  # results are quantised to 10 decimal places


def add_months(start: dt.date, k: int) -> dt.date:
    """Same day k months later, or that month's last day (so Jan 31 -> Feb 28 -> Mar 31)."""
    index = start.year * 12 + start.month - 1 + k
    year, month0 = divmod(index, 12)
    last = (D(year + (month0 + 1) // 12, (month0 + 1) % 12 + 1, 1) - dt.timedelta(days=1)).day
    return D(year, month0 + 1, min(start.day, last))


def flows_at(dates: list[dt.date], amounts: list[int]) -> list[CashFlow]:
    return [CashFlow(d, a) for d, a in zip(dates, amounts, strict=True)]


def hi_precision() -> decimal.Context:
    return decimal.Context(prec=60)


def close(value: Decimal, expected: Fraction | Decimal, tol: Fraction = HALF_ULP) -> bool:
    return abs(Fraction(value) - Fraction(expected)) <= tol


# ------------------------------------------------------- 2. cross-check: numpy_financial

REGULAR_STREAMS = [
    # (unit period, step, amounts at periods 0, 1, 2, ...)
    ("month", [-500000] + [23000] * 24),  # Appendix J (c)(1)(i)
    ("month", [-100000, 30000, 30000, 30000, 30000]),
    ("month", [-98000] + [9000] * 11 + [15000]),  # odd last payment
    ("month", [-50000, -50000, 35000, 35000, 35000]),  # two advances
    ("week", [-10000] + [2600] * 4),
    ("2week", [-20000, 0, 11000, 11000]),  # a skipped period
    ("day", [-10000] + [1100] * 10),
    ("quarter", [-1000000] + [60000] * 20),
]


def _dates(unit: str, start: dt.date, n: int) -> list[dt.date]:
    if unit == "month":
        return [add_months(start, k) for k in range(n)]
    if unit == "quarter":
        return [add_months(start, 3 * k) for k in range(n)]
    days = {"day": 1, "week": 7, "2week": 14}[unit]
    return [start + dt.timedelta(days=days * k) for k in range(n)]


@pytest.mark.parametrize(("unit", "amounts"), REGULAR_STREAMS)
def test_irr_matches_numpy_financial_on_regular_periods(unit: str, amounts: list[int]) -> None:
    dates = _dates(unit, D(2025, 1, 31) if unit == "month" else D(2025, 1, 6), len(amounts))
    flows = [CashFlow(d, a) for d, a in zip(dates, amounts, strict=True) if a != 0]
    expected = float(npf.irr(amounts))
    result = annual_rate(flows, Method.IRR, UnitPeriod(unit))
    assert abs(float(result.periodic_rate) - expected) <= 1e-9
    assert result.periods_per_year == UnitPeriod(unit).periods_per_year
    # irr-compound is the same periodic rate, compounded
    compound = annual_rate(flows, Method.IRR_COMPOUND, UnitPeriod(unit))
    assert compound.periodic_rate == result.periodic_rate
    assert abs(float(compound.annual_rate) - ((1 + expected) ** result.periods_per_year - 1)) < 1e-9


@pytest.mark.parametrize(("unit", "amounts"), REGULAR_STREAMS)
def test_reg_z_equals_irr_when_every_flow_is_a_whole_number_of_unit_periods(
    unit: str, amounts: list[int]
) -> None:
    # With no fractional unit-periods, (b)(8) reduces to the plain IRR equation.
    dates = _dates(unit, D(2024, 3, 15), len(amounts))
    flows = [CashFlow(d, a) for d, a in zip(dates, amounts, strict=True) if a != 0]
    regz = annual_rate(flows, Method.REG_Z, UnitPeriod(unit))
    irr = annual_rate(flows, Method.IRR, UnitPeriod(unit))
    assert regz.periodic_rate == irr.periodic_rate
    assert regz.annual_rate == irr.annual_rate_nominal


def test_multiple_advances_solve_the_hand_written_equation() -> None:
    # 500.00 on Jan 1 and 500.00 on Feb 1; 350.00 on Mar 1, Apr 1, May 1 (monthly unit):
    # 500 + 500 v = 350 (v^2 + v^3 + v^4), v = 1 / (1 + i)  (Appendix J (b)(8), f = 0)
    flows = [
        CashFlow(D(2025, 1, 1), -50000),
        CashFlow(D(2025, 2, 1), -50000),
        CashFlow(D(2025, 3, 1), 35000),
        CashFlow(D(2025, 4, 1), 35000),
        CashFlow(D(2025, 5, 1), 35000),
    ]
    result = annual_rate(flows)
    assert result.unit_period is UnitPeriod.MONTH
    with decimal.localcontext(hi_precision()):
        v = 1 / (1 + result.periodic_rate)
        residual = 500 + 500 * v - 350 * (v**2 + v**3 + v**4)
    assert abs(residual) < Decimal("1E-7")  # periodic_rate is rounded to 1e-10
    assert abs(float(result.periodic_rate) - float(npf.irr([-500, -500, 350, 350, 350]))) < 1e-9


def test_odd_first_period_uses_simple_interest_for_the_fraction() -> None:
    # Advance Jan 10; payments Mar 1 and Apr 1 of 520.00 on 1,000.00.  By (b)(5)(ii): Mar 1
    # is 1 full month back to Feb 1 plus 22 days (Jan 10 -> Feb 1): t = 1, f = 22/30;
    # Apr 1: t = 2, f = 22/30.  (b)(8): 1000 = 520/((1+f i)(1+i)) + 520/((1+f i)(1+i)^2).
    flows = [
        CashFlow(D(2025, 1, 10), -100000),
        CashFlow(D(2025, 3, 1), 52000),
        CashFlow(D(2025, 4, 1), 52000),
    ]
    result = annual_rate(flows)
    assert result.unit_period is UnitPeriod.MONTH
    with decimal.localcontext(hi_precision()):
        i = result.periodic_rate
        f = Decimal(22) / 30
        rhs = 520 / ((1 + f * i) * (1 + i)) + 520 / ((1 + f * i) * (1 + i) ** 2)
    assert abs(rhs - 1000) < Decimal("1E-6")
    # The IRR of the same stream uses (1+i)^(t+f) instead and gives a different rate.
    assert annual_rate(flows, Method.IRR).periodic_rate != result.periodic_rate


# --------------------------------------------- 3. single-period loan, worked by hand


def test_fourteen_day_loan_with_upfront_fee() -> None:
    """1,000.00 for 14 days at 18 % a year, 20.00 fee deducted at the start.

    Interest = 1000.00 × 0.18 × 14 / 365 = 6.9041... -> 6.90 (to the cent).
    The borrower receives 1000.00 - 20.00 = 980.00 and repays 1000.00 + 6.90 = 1006.90.
    Term rate r = 1006.90 / 980.00 - 1 = 26.90 / 980.00 = 0.0274489795918...

    reg-z: one advance, one payment, term 14 days (not a whole number of months), so the
    unit-period is the term and there are 365/14 of them a year (Appendix J (b)(4)(ii),
    (b)(5)(vii)): APR = r × 365 / 14 = 0.71563411078717...
    irr, unit period "day": (1 + i)^14 = 1006.90 / 980.00, so i = (1006.90/980.00)^(1/14) - 1
    and nominal = 365 i = 0.7066...; compounded: (1006.90 / 980.00)^(365/14) - 1 = 1.0258...
    """
    interest = (Decimal("1000.00") * Decimal("0.18") * 14 / 365).quantize(Decimal("0.01"))
    assert interest == Decimal("6.90")
    received = Decimal("1000.00") - Decimal("20.00")
    repaid = Decimal("1000.00") + interest
    flows = [
        CashFlow(D(2025, 3, 3), -int(received * 100)),
        CashFlow(D(2025, 3, 17), int(repaid * 100)),
    ]
    term_rate = Fraction(repaid) / Fraction(received) - 1
    assert term_rate == Fraction(2690, 98000)

    regz = annual_rate(flows, Method.REG_Z)
    assert close(regz.annual_rate, term_rate * Fraction(365, 14))
    assert regz.annual_rate == Decimal("0.7156341108")  # 0.71563411078717... rounded
    assert regz.unit_period is UnitPeriod.DAY and regz.periods_per_year == 365
    assert close(regz.periodic_rate, term_rate / 14)

    with decimal.localcontext(hi_precision()):
        growth = repaid / received
        daily = (growth.ln() / 14).exp() - 1
        compounded = (growth.ln() * 365 / 14).exp() - 1
    irr = annual_rate(flows, Method.IRR, UnitPeriod.DAY)
    assert close(irr.periodic_rate, daily)
    assert close(irr.annual_rate, daily * 365)
    assert close(irr.annual_rate_compound, compounded)
    irr_c = annual_rate(flows, Method.IRR_COMPOUND, UnitPeriod.DAY)
    assert irr_c.annual_rate == irr.annual_rate_compound
    # reg-z's compound figure is that of its own unit-period, the 14-day term, which is
    # the same effective annual rate
    assert close(regz.annual_rate_compound, compounded, Fraction(1, 10**9))
    # The three headline figures are different numbers, in this order:
    assert irr.annual_rate < regz.annual_rate < irr_c.annual_rate


# ------------------------------------------------------------ 4. the whole-term trap


def test_whole_term_rate_is_annualised_over_sixty_days_not_taken_as_annual() -> None:
    """100,000.00 for 60 days at 1 % for the whole term: repay 101,000.00.

    The 1 % is a rate for 60 days, not a year.  Jan 15 -> Mar 16 2025 is 60 days and not a
    whole number of months, so:
      reg-z        = 0.01 × 365 / 60                 = 0.0608333333...  (6.08 %)
      irr (day)    = 365 × (1.01^(1/60) - 1)          = 0.0605...        (6.05 %)
      irr-compound = 1.01^(365/60) - 1                = 0.0624...        (6.24 %)
    Wrong answers it must not give: 0.01 (the term rate read as annual) or
    0.01 × 365 / 365.
    """
    flows = [CashFlow(D(2025, 1, 15), -10_000_000), CashFlow(D(2025, 3, 16), 10_100_000)]
    assert (D(2025, 3, 16) - D(2025, 1, 15)).days == 60

    regz = annual_rate(flows)
    assert close(regz.annual_rate, Fraction(1, 100) * Fraction(365, 60))
    assert regz.annual_rate != Decimal("0.0100000000")

    with decimal.localcontext(hi_precision()):
        ln = Decimal("1.01").ln()
        daily = (ln / 60).exp() - 1
        effective = (ln * 365 / 60).exp() - 1
    irr = annual_rate(flows, Method.IRR)
    assert irr.unit_period is UnitPeriod.DAY
    assert close(irr.annual_rate, daily * 365)
    irr_c = annual_rate(flows, Method.IRR_COMPOUND)
    assert close(irr_c.annual_rate, effective)
    assert Decimal("0.060") < irr.annual_rate < regz.annual_rate
    assert regz.annual_rate < irr_c.annual_rate < Decimal("0.063")


def test_whole_term_of_exactly_two_months_uses_twelve_over_two() -> None:
    # Jan 1 -> Mar 1 2024 is also 60 days, but it is exactly 2 months: Appendix J
    # (b)(5)(vi) then gives 12 / 2 = 6 unit-periods a year: APR = 0.01 × 6 = 0.06.
    flows = [CashFlow(D(2024, 1, 1), -10_000_000), CashFlow(D(2024, 3, 1), 10_100_000)]
    result = annual_rate(flows)
    assert result.annual_rate == Decimal("0.0600000000")
    assert result.unit_period is UnitPeriod.MONTH
    assert close(result.periodic_rate, Fraction(1, 200))
    # irr over months: (1 + i)^2 = 1.01
    with decimal.localcontext(hi_precision()):
        monthly = Decimal("1.01").sqrt() - 1
    assert close(annual_rate(flows, Method.IRR).annual_rate, monthly * 12)
    # Forced onto a day unit-period, reg-z uses the general equation: (1 + i)^60 = 1.01
    with decimal.localcontext(hi_precision()):
        daily = (Decimal("1.01").ln() / 60).exp() - 1
    assert close(annual_rate(flows, Method.REG_Z, UnitPeriod.DAY).annual_rate, daily * 365)


def test_single_payment_after_more_than_a_year_uses_a_one_year_unit_period() -> None:
    # (b)(4)(ii): the unit-period is the term but not more than a year.  1,000.00 repaid
    # with 1,210.00 after exactly 2 years: (1 + i)^2 = 1.21, i = 0.10.
    flows = [CashFlow(D(2023, 6, 30), -100000), CashFlow(D(2025, 6, 30), 121000)]
    result = annual_rate(flows)
    assert result.unit_period is UnitPeriod.YEAR
    assert result.annual_rate == Decimal("0.1000000000")


# --------------------------------------------------------------- unit-period inference


def test_infer_monthly_on_month_ends() -> None:
    # A series on the last day of each month is monthly ((b)(3)(iv)), Feb 28 included.
    start = D(2024, 12, 31)
    dates = [start, D(2025, 1, 31), D(2025, 2, 28), D(2025, 3, 31), D(2025, 4, 30)]
    flows = flows_at(dates, [-100000, 26000, 26000, 26000, 26000])
    assert infer_unit_period(flows) is UnitPeriod.MONTH
    expected = float(npf.irr([-1000, 260, 260, 260, 260]))
    assert abs(float(annual_rate(flows).periodic_rate) - expected) < 1e-9


def test_infer_monthly_on_the_thirtieth_with_february() -> None:
    dates = [D(2024, 12, 30), D(2025, 1, 30), D(2025, 2, 28), D(2025, 3, 30)]
    flows = flows_at(dates, [-90000, 31000, 31000, 31000])
    assert infer_unit_period(flows) is UnitPeriod.MONTH
    expected = float(npf.irr([-900, 310, 310, 310]))
    assert abs(float(annual_rate(flows).periodic_rate) - expected) < 1e-9


@pytest.mark.parametrize(
    ("step_days", "unit"),
    [
        (1, UnitPeriod.DAY),
        (7, UnitPeriod.WEEK),
        (14, UnitPeriod.TWO_WEEKS),
        (28, UnitPeriod.FOUR_WEEKS),
    ],
)
def test_infer_day_and_week_multiples(step_days: int, unit: UnitPeriod) -> None:
    start = D(2025, 5, 5)
    flows = [CashFlow(start, -10000)] + [
        CashFlow(start + dt.timedelta(days=step_days * k), 2600) for k in range(1, 5)
    ]
    assert infer_unit_period(flows) is unit


@pytest.mark.parametrize(
    ("months", "unit"),
    [
        (1, UnitPeriod.MONTH),
        (2, UnitPeriod.TWO_MONTHS),
        (3, UnitPeriod.QUARTER),
        (6, UnitPeriod.SEMIYEAR),
        (12, UnitPeriod.YEAR),
    ],
)
def test_infer_month_multiples(months: int, unit: UnitPeriod) -> None:
    start = D(2025, 1, 20)
    flows = [CashFlow(start, -10000)] + [
        CashFlow(add_months(start, months * k), 2700) for k in range(1, 5)
    ]
    assert infer_unit_period(flows) is unit


def test_infer_tie_goes_to_the_smaller_period() -> None:
    # (b)(4)(i)(A): two weekly and two monthly periods -> the week.
    start = D(2025, 1, 1)
    dates = [start, D(2025, 1, 8), D(2025, 1, 15), D(2025, 2, 15), D(2025, 3, 15)]
    flows = flows_at(dates, [-10000, 2600, 2600, 2600, 2600])
    assert infer_unit_period(flows) is UnitPeriod.WEEK


def test_infer_no_common_period_rounds_the_average() -> None:
    # (b)(4)(i)(B): periods of 10, 20 and 33 days (none repeats): average 21 days; nearest
    # standard interval among week (7), 2 weeks (14), semimonth (15.2), 4 weeks (28):
    # 28 is 7 away, 15.2 is 5.8 away -> semimonth.
    start = D(2025, 1, 1)
    dates = [start, D(2025, 1, 11), D(2025, 1, 31), D(2025, 3, 5)]
    flows = flows_at(dates, [-10000, 3500, 3500, 3500])
    assert infer_unit_period(flows) is UnitPeriod.SEMIMONTH


def test_unsupported_common_period_asks_for_an_explicit_unit_period() -> None:
    start = D(2025, 1, 1)
    flows = [CashFlow(start, -10000)] + [
        CashFlow(start + dt.timedelta(days=10 * k), 2600) for k in range(1, 5)
    ]
    with pytest.raises(AprError, match=r"10 days.*pass unit_period"):
        annual_rate(flows)
    assert annual_rate(flows, unit_period=UnitPeriod.DAY).unit_period is UnitPeriod.DAY


def test_unsorted_input_gives_the_same_result() -> None:
    dates = [add_months(D(2025, 1, 10), k) for k in range(7)]
    flows = flows_at(dates, [-60000] + [10500] * 6)
    for method in Method:
        assert annual_rate(list(reversed(flows)), method) == annual_rate(flows, method)


def test_same_day_flows_are_netted() -> None:
    # A fee paid back on the day of the advance is the same as a smaller advance.
    start = D(2025, 1, 10)
    gross = [CashFlow(start, -100000), CashFlow(start, 2000), CashFlow(D(2025, 2, 10), 100690)]
    net = [CashFlow(start, -98000), CashFlow(D(2025, 2, 10), 100690)]
    assert annual_rate(gross) == annual_rate(net)


def test_zero_interest_is_exactly_zero() -> None:
    flows = [CashFlow(D(2025, 1, 1), -30000)] + [
        CashFlow(add_months(D(2025, 1, 1), k), 10000) for k in range(1, 4)
    ]
    for method in Method:
        result = annual_rate(flows, method)
        assert result.annual_rate == 0
        assert result.annual_rate_compound == 0


def test_results_are_quantised_to_ten_places() -> None:
    flows = [CashFlow(D(2025, 1, 10), -500000)] + [
        CashFlow(add_months(D(2025, 2, 10), k), 23000) for k in range(24)
    ]
    result = annual_rate(flows)
    assert isinstance(result, AprResult)
    for value in (
        result.periodic_rate,
        result.annual_rate_nominal,
        result.annual_rate_compound,
        result.annual_rate,
    ):
        assert isinstance(value, Decimal)
        assert value.as_tuple().exponent == -10


def test_huge_rates_still_quantise() -> None:
    # 1.00 lent for a day, 2.00 repaid: 100 % a day; compounded over 365 days ~ 7.5e109.
    flows = [CashFlow(D(2025, 1, 1), -100), CashFlow(D(2025, 1, 2), 200)]
    result = annual_rate(flows, Method.IRR_COMPOUND, UnitPeriod.DAY)
    assert result.periodic_rate == Decimal("1.0000000000")
    exact = Fraction(2) ** 365 - 1
    assert abs(Fraction(result.annual_rate) - exact) <= exact / 10**38  # 40 digits


def test_result_does_not_depend_on_the_callers_decimal_context() -> None:
    flows = [CashFlow(D(2025, 1, 10), -500000)] + [
        CashFlow(add_months(D(2025, 2, 10), k), 23000) for k in range(24)
    ]
    baseline = annual_rate(flows)
    with decimal.localcontext(decimal.Context(prec=5, rounding=decimal.ROUND_DOWN)):
        assert annual_rate(flows) == baseline


# ---------------------------------------------------------------------- 6. bad input

BAD = [
    ([], "no cash flows"),
    ([CashFlow(D(2025, 1, 1), -100), CashFlow(D(2025, 2, 1), -100)], "no repayment"),
    ([CashFlow(D(2025, 1, 1), 100), CashFlow(D(2025, 2, 1), 100)], "no advance"),
    ([CashFlow(D(2025, 1, 1), 0), CashFlow(D(2025, 2, 1), 0)], "zero"),
    ([CashFlow(D(2025, 1, 1), -1000), CashFlow(D(2025, 2, 1), 999)], "never cover"),
    (
        [
            CashFlow(D(2025, 1, 1), 500),
            CashFlow(D(2025, 1, 2), -1000),
            CashFlow(D(2025, 2, 1), 600),
        ],
        "before the first advance",
    ),
    ([CashFlow(D(2025, 1, 1), -1000), CashFlow(D(2025, 1, 1), 1000)], "same date"),
    # 1 cent lent, 1e12.00 repaid the next day: 1e14 per day, beyond the search
    ([CashFlow(D(2025, 1, 1), -1), CashFlow(D(2025, 1, 2), 10**14)], "no rate solves"),
]


@pytest.mark.parametrize(("flows", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_streams_raise_apr_error(flows: list[CashFlow], message: str) -> None:
    for method in Method:
        unit = UnitPeriod.DAY if message == "no rate solves" else None
        with pytest.raises(AprError, match=message):
            annual_rate(flows, method, unit)


def test_bad_values_raise_apr_error() -> None:
    with pytest.raises(AprError, match="minor units"):
        CashFlow(D(2025, 1, 1), 10.5)  # type: ignore[arg-type]
    with pytest.raises(AprError, match="minor units"):
        CashFlow(D(2025, 1, 1), True)
    with pytest.raises(AprError, match=r"datetime\.date"):
        CashFlow(dt.datetime(2025, 1, 1, 12, 0), 100)
    with pytest.raises(AprError, match=r"datetime\.date"):
        CashFlow("2025-01-01", 100)  # type: ignore[arg-type]
    good = [CashFlow(D(2025, 1, 1), -100), CashFlow(D(2025, 2, 1), 110)]
    with pytest.raises(AprError, match="method must be"):
        annual_rate(good, "reg-z")  # type: ignore[arg-type]
    with pytest.raises(AprError, match="unit_period must be"):
        annual_rate(good, Method.IRR, "month")  # type: ignore[arg-type]
    with pytest.raises(AprError, match="sequence of CashFlow"):
        annual_rate(good[0])  # type: ignore[arg-type]
    with pytest.raises(AprError, match="not CashFlow"):
        annual_rate([good[0], (D(2025, 2, 1), 110)])  # type: ignore[list-item]


def test_apr_error_is_a_value_error() -> None:
    assert issubclass(AprError, ValueError)
