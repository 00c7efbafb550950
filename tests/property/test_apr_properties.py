"""Properties of lendsafe.domain.lending.apr.annual_rate, checked with hypothesis.

- scaling every amount by the same integer factor leaves every rate unchanged;
- increasing any repayment never lowers the rate;
- a stream whose repayments add up to its advances has a rate of exactly 0.

Streams are loan-shaped: one to three advances, all dated no later than the first
repayment, then one to twelve repayments.  For such streams the present value is
strictly decreasing in the rate (by method), so the rate is unique and the properties are
theorems, not just observations.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lendsafe.domain.lending.apr import (
    AprError,
    AprResult,
    CashFlow,
    Method,
    UnitPeriod,
    annual_rate,
    infer_unit_period,
)

ONE_ULP = Decimal("1E-10")


def add_months(start: dt.date, k: int) -> dt.date:
    index = start.year * 12 + start.month - 1 + k
    year, month0 = divmod(index, 12)
    nxt = dt.date(year + (month0 + 1) // 12, (month0 + 1) % 12 + 1, 1)
    return dt.date(year, month0 + 1, min(start.day, (nxt - dt.timedelta(days=1)).day))


@dataclass(frozen=True)
class Case:
    flows: list[CashFlow]
    unit: UnitPeriod | None  # None: let Appendix J (b)(4) choose


def _split(total: int, weights: list[int]) -> list[int]:
    """Split ``total`` into len(weights) positive integers in proportion to weights."""
    n = len(weights)
    spare = total - n  # each part gets at least 1
    scale = sum(weights)
    parts = [1 + spare * w // scale for w in weights]
    parts[-1] += total - sum(parts)
    return parts


@st.composite
def loan_streams(draw: st.DrawFn, zero_interest: bool = False) -> Case:
    start = draw(st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2035, 12, 31)))
    n = draw(st.integers(min_value=1, max_value=12))
    shape = draw(st.sampled_from(["month", "week", "2week", "4week", "irregular"]))
    first = draw(st.integers(min_value=1, max_value=60))
    if shape == "month":
        anchor = start + dt.timedelta(days=first)
        dates = [add_months(anchor, k) for k in range(n)]
        unit = None
    elif shape == "irregular":
        gaps = draw(st.lists(st.integers(min_value=1, max_value=120), min_size=n, max_size=n))
        dates, day = [], 0
        for gap in gaps:
            day += gap
            dates.append(start + dt.timedelta(days=day))
        unit = draw(st.sampled_from(list(UnitPeriod)))
    else:
        step = {"week": 7, "2week": 14, "4week": 28}[shape]
        dates = [start + dt.timedelta(days=first + step * k) for k in range(n)]
        unit = None

    advances_n = draw(st.integers(min_value=1, max_value=3))
    span = (dates[0] - start).days  # later advances fall strictly before the first repayment
    offsets = sorted(
        draw(
            st.sets(
                st.integers(min_value=1, max_value=max(1, span - 1)),
                min_size=0,
                max_size=advances_n - 1,
            )
        )
    )
    offsets = [o for o in offsets if o < span]
    advance_dates = [start] + [start + dt.timedelta(days=o) for o in offsets]
    advance_amounts = draw(
        st.lists(
            st.integers(min_value=1, max_value=5_000_000),
            min_size=len(advance_dates),
            max_size=len(advance_dates),
        )
    )
    advanced = sum(advance_amounts)
    interest = 0 if zero_interest else draw(st.integers(min_value=0, max_value=2 * advanced))
    total = advanced + interest
    if total < n:  # every repayment must be at least one minor unit
        total = n
        if zero_interest:
            advance_amounts[0] += n - advanced
    weights = draw(st.lists(st.integers(min_value=1, max_value=100), min_size=n, max_size=n))
    repayments = _split(total, weights)
    flows = [CashFlow(d, -a) for d, a in zip(advance_dates, advance_amounts, strict=True)]
    flows += [CashFlow(d, a) for d, a in zip(dates, repayments, strict=True)]
    return Case(flows, unit)


def supported(case: Case) -> None:
    """Skip the rare random stream whose most common period is not a supported unit period
    (e.g. two advances 5 days apart); that refusal is tested in tests/unit."""
    if case.unit is None:
        try:
            infer_unit_period(case.flows)
        except AprError as error:
            assume("pass unit_period" not in str(error))
            raise


def rate(flows: list[CashFlow], method: Method, unit: UnitPeriod | None) -> AprResult:
    """The rate, skipping streams whose rate is beyond the solver's search (over 1e12 per
    unit period, e.g. 1 cent doubled in a day measured in years); tested in tests/unit."""
    try:
        return annual_rate(flows, method, unit)
    except AprError as error:
        assume("no rate solves" not in str(error))
        raise


methods = st.sampled_from(list(Method))
SETTINGS = settings(max_examples=200, deadline=None)


@SETTINGS
@given(case=loan_streams(), factor=st.integers(min_value=2, max_value=1000), method=methods)
def test_scaling_every_amount_leaves_the_rate_unchanged(
    case: Case, factor: int, method: Method
) -> None:
    supported(case)
    scaled = [CashFlow(f.on, f.amount_minor * factor) for f in case.flows]
    base = rate(case.flows, method, case.unit)
    other = rate(scaled, method, case.unit)
    assert other.unit_period is base.unit_period
    for a, b in (
        (base.periodic_rate, other.periodic_rate),
        (base.annual_rate_nominal, other.annual_rate_nominal),
        (base.annual_rate_compound, other.annual_rate_compound),
        (base.annual_rate, other.annual_rate),
    ):
        assert abs(a - b) <= ONE_ULP * max(1, abs(a))


@SETTINGS
@given(case=loan_streams(), data=st.data(), method=methods)
def test_increasing_a_repayment_never_lowers_the_rate(
    case: Case, data: st.DataObject, method: Method
) -> None:
    supported(case)
    repayment_positions = [k for k, f in enumerate(case.flows) if f.amount_minor > 0]
    k = data.draw(st.sampled_from(repayment_positions))
    extra = data.draw(st.integers(min_value=1, max_value=1_000_000))
    bigger = list(case.flows)
    bigger[k] = CashFlow(bigger[k].on, bigger[k].amount_minor + extra)
    before = rate(case.flows, method, case.unit)
    after = rate(bigger, method, case.unit)
    assert after.annual_rate >= before.annual_rate
    assert after.periodic_rate >= before.periodic_rate


@SETTINGS
@given(case=loan_streams(zero_interest=True), method=methods)
def test_zero_interest_stream_has_rate_zero(case: Case, method: Method) -> None:
    supported(case)
    assert sum(f.amount_minor for f in case.flows) == 0
    result = rate(case.flows, method, case.unit)
    assert result.periodic_rate == 0
    assert result.annual_rate == 0
    assert result.annual_rate_nominal == 0
    assert result.annual_rate_compound == 0
