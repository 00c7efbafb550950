"""Golden tests: batch_schedules equals build_schedule to the cent, instalment by instalment.

Random portfolios (hypothesis) mix every loan type, tiny and huge principals, rates with up
to 9 decimals (including rates that put interest exactly on a half cent), 1–360 instalments,
monthly 30/360, weekly ACT/365F, biweekly ACT/360 and bullet loans, under HALF_UP and
HALF_EVEN. Fixed cases pin a half-cent tie that naive float rounding gets wrong, the exact
near-tie fallback of the annuity payment, the overflow-safe path, and loud refusals.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lendsafe.domain.calendar import BusinessCalendar, DayCount, Frequency, Rolling
from lendsafe.domain.lending import batch_schedule as engine
from lendsafe.domain.lending.batch_schedule import (
    Kind,
    batch_schedules,
    inputs_from_terms,
    rate_ppb,
    regular_period,
)
from lendsafe.domain.lending.product import LoanType, Term, TermUnit
from lendsafe.domain.lending.schedule import LoanTerms, annuity_payment, build_schedule
from lendsafe.domain.money import Rounding, currency

CNY = currency("CNY")
INSTALMENT_TYPES = (LoanType.ANNUITY, LoanType.EQUAL_PRINCIPAL, LoanType.INTEREST_ONLY)
# Monthly rates of 0.5 %, 1 %, 1.5 %, 2.5 % put interest exactly on half cents for many balances.
TIE_RATES = ("0.06", "0.12", "0.18", "0.3", "0.24", "0.1", "0")


def reference_rows(terms: LoanTerms) -> list[tuple[int, int]]:
    """(principal, interest) of every instalment from the exact per-loan reference."""
    return [(row.principal_minor, row.interest_minor) for row in build_schedule(terms).installments]


def assert_same_as_reference(portfolio: list[LoanTerms]) -> None:
    """Every instalment of every loan equals build_schedule's, and loan/seq are right."""
    batch = inputs_from_terms(portfolio).schedules()
    assert len(batch.offsets) == len(portfolio) + 1
    for index, terms in enumerate(portfolio):
        principal, interest = batch.rows(index)
        got = list(zip(principal.tolist(), interest.tolist(), strict=True))
        assert got == reference_rows(terms), (index, terms)
        start, end = batch.offsets[index], batch.offsets[index + 1]
        assert batch.loan[start:end].tolist() == [index] * (end - start)
        assert batch.seq[start:end].tolist() == list(range(1, end - start + 1))


principals = st.one_of(
    st.integers(1, 100),  # tiny: equal-principal parts round to 0 or 1 minor unit
    st.integers(100, 10_000_000),
    st.integers(10**9, 10**12),  # huge: exercises the overflow-safe split product
    st.sampled_from([20_100, 10_050, 14_460, 10**12]),
)
rates = st.one_of(
    st.sampled_from(TIE_RATES).map(Decimal),
    st.integers(0, 10**9).map(lambda n: Decimal(n).scaleb(-9)),  # 0..1 with 9 decimals
    st.integers(0, 10**4).map(lambda n: Decimal(n).scaleb(-3)),  # 0..10 (1000 %)
)


@st.composite
def instalment_loan(draw: st.DrawFn, rounding: Rounding) -> LoanTerms:
    """A regular instalment loan: monthly 30/360, weekly ACT/365F or biweekly ACT/360."""
    count = draw(st.one_of(st.integers(1, 36), st.integers(1, 360)))
    shape = draw(st.sampled_from(["monthly", "weekly", "biweekly"]))
    term, frequency, day_count = {
        "monthly": (Term(count, TermUnit.MONTHS), Frequency.MONTHLY, DayCount.THIRTY_360),
        "weekly": (Term(count, TermUnit.WEEKS), Frequency.WEEKLY, DayCount.ACT_365F),
        "biweekly": (Term(2 * count, TermUnit.WEEKS), Frequency.BIWEEKLY, DayCount.ACT_360),
    }[shape]
    return LoanTerms(
        type=draw(st.sampled_from(INSTALMENT_TYPES)), currency=CNY,
        amount_minor=draw(principals), annual_rate=draw(rates),
        start=date(2025, draw(st.integers(1, 12)), draw(st.integers(1, 28))),
        term=term, frequency=frequency, day_count=day_count, rounding=rounding,
    )


@st.composite
def bullet_loan(draw: st.DrawFn, rounding: Rounding) -> LoanTerms:
    """A single-period loan of 1–360 days under any day count."""
    return LoanTerms(
        type=LoanType.BULLET, currency=CNY, amount_minor=draw(principals),
        annual_rate=draw(rates), start=date(2025, 3, draw(st.integers(1, 31))),
        term=Term(draw(st.integers(1, 360)), TermUnit.DAYS),
        day_count=draw(st.sampled_from(list(DayCount))), rounding=rounding,
    )


@st.composite
def portfolios(draw: st.DrawFn) -> list[LoanTerms]:
    rounding = draw(st.sampled_from([Rounding.HALF_UP, Rounding.HALF_EVEN]))
    loan = st.one_of(instalment_loan(rounding), bullet_loan(rounding))
    return draw(st.lists(loan, min_size=1, max_size=12))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(portfolios())
def test_random_portfolios_equal_the_reference_to_the_cent(portfolio: list[LoanTerms]) -> None:
    assert_same_as_reference(portfolio)


def loan(kind: LoanType, amount: int, rate: str, months: int, **changes: Any) -> LoanTerms:
    """A monthly 30/360 loan starting on the 15th."""
    terms = LoanTerms(
        type=kind, currency=CNY, amount_minor=amount, annual_rate=Decimal(rate),
        start=date(2025, 1, 15), term=Term(months, TermUnit.MONTHS),
        frequency=Frequency.MONTHLY, day_count=DayCount.THIRTY_360,
    )
    return replace(terms, **changes)


def test_half_cent_tie_is_rounded_up_where_naive_float_rounds_down() -> None:
    # 201.00 at 6 % a year for a 30/360 month: exactly 1.005 → 1.01 half-up.
    terms = loan(LoanType.INTEREST_ONLY, 20_100, "0.06", 3)
    naive = round(201.00 * 0.06 / 12, 2)
    assert naive == 1.00  # the float product sits just below the half cent
    batch = inputs_from_terms([terms]).schedules()
    assert batch.interest_minor.tolist() == [101, 101, 101]
    assert reference_rows(terms) == [(0, 101), (0, 101), (20_100, 101)]


def test_half_even_ties_go_to_the_even_cent() -> None:
    portfolio = [
        loan(LoanType.INTEREST_ONLY, 20_100, "0.06", 2, rounding=Rounding.HALF_EVEN),  # 100.5
        loan(LoanType.EQUAL_PRINCIPAL, 5, "0", 2, rounding=Rounding.HALF_EVEN),  # 2.5 a part
    ]
    batch = inputs_from_terms(portfolio).schedules()
    assert batch.interest_minor.tolist()[:2] == [100, 100]
    assert batch.principal_minor.tolist()[2:] == [2, 3]
    assert_same_as_reference(portfolio)


def test_annuity_payment_near_a_half_cent_is_recomputed_exactly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 100.50 at 12 % over 2 months: the exact payment is 10201/2 = 5100.5 minor units.
    calls: list[int] = []

    def counting(principal: int, rates: list[Fraction], rounding: Rounding) -> int:
        calls.append(principal)
        return annuity_payment(principal, rates, rounding)

    monkeypatch.setattr(engine, "annuity_payment", counting)
    terms = loan(LoanType.ANNUITY, 10_050, "0.12", 2)
    batch = inputs_from_terms([terms]).schedules()
    assert batch.payment_minor.tolist() == [5101]
    assert calls == [10_050]
    assert_same_as_reference([terms])


def test_payment_far_from_a_half_cent_uses_float_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "annuity_payment", lambda *_: pytest.fail("recomputed"))
    terms = loan(LoanType.ANNUITY, 1_000_000, "0.12", 12)
    batch = inputs_from_terms([terms]).schedules()
    exact = Fraction(1_000_000) / sum(Fraction(100, 101) ** k for k in range(1, 13))
    assert batch.payment_minor.tolist() == [round(exact)]  # 88848.79 → 88849


def test_reference_rounds_an_exact_annuity_tie_half_up() -> None:
    # 144.60 at 10 % over 2 months: exact payment 14641/2 = 7320.5 → 7321 half-up.
    rate = Fraction(Decimal("0.10")) / 12
    exact = Fraction(14_460) / (1 / (1 + rate) + 1 / (1 + rate) ** 2)
    assert exact == Fraction(14_641, 2)
    assert annuity_payment(14_460, [rate, rate], Rounding.HALF_UP) == 7321


def test_batch_follows_the_reference_on_an_exact_tie() -> None:
    # Same loan: the batch delegates near ties to the reference, so it matches (7321).
    terms = loan(LoanType.ANNUITY, 14_460, "0.10", 2)
    batch = inputs_from_terms([terms]).schedules()
    assert batch.payment_minor.tolist() == [7321]
    assert_same_as_reference([terms])


def test_extreme_bounds_do_not_overflow() -> None:
    # principal 10^12, 1000 % a year, 366-day bullet and 1200 monthly periods: exact values.
    principal, ppb = 10**12, 10 * 10**9
    batch = batch_schedules(
        [principal, principal, principal], [ppb, ppb, 123_456_789],
        [1, 1200, 360], [Kind.BULLET, Kind.INTEREST_ONLY, Kind.EQUAL_PRINCIPAL],
        period_days=[366, 30, 30], year_days=[360, 360, 365],
    )
    assert batch.rows(0)[1].tolist() == [round(Fraction(principal * 10 * 366, 360))]
    io_interest = round(Fraction(principal * 10, 12))
    assert batch.rows(1)[1].tolist() == [io_interest] * 1200
    part = round(Fraction(principal, 360))
    balances = [max(principal - k * part, 0) for k in range(360)]
    rate = Fraction(123_456_789 * 30, 10**9 * 365)
    expected = [int(Fraction(b) * rate + Fraction(1, 2)) for b in balances]
    assert batch.rows(2)[1].tolist() == expected


def test_split_path_equals_direct_path() -> None:
    rng = np.random.default_rng(7)
    small = rng.integers(1, 10**7, 500)
    rate = rng.integers(0, 10**9, 500)
    kinds = rng.integers(1, 4, 500)
    counts = rng.integers(1, 60, 500)
    direct = batch_schedules(small, rate, counts, kinds)
    forced = batch_schedules(np.append(small, 10**12), np.append(rate, 10**10),
                             np.append(counts, 1), np.append(kinds, Kind.INTEREST_ONLY))
    cut = int(direct.offsets[-1])
    assert np.array_equal(forced.interest_minor[:cut], direct.interest_minor)
    assert np.array_equal(forced.principal_minor[:cut], direct.principal_minor)


def test_zero_rate_annuity_pays_equal_parts() -> None:
    terms = loan(LoanType.ANNUITY, 1_000, "0", 3)
    batch = inputs_from_terms([terms]).schedules()
    assert batch.principal_minor.tolist() == [333, 333, 334]
    assert batch.interest_minor.tolist() == [0, 0, 0]
    assert_same_as_reference([terms])


def test_empty_portfolio() -> None:
    empty = np.array([], dtype=np.int64)
    batch = batch_schedules(empty, empty, empty, empty)
    assert batch.offsets.tolist() == [0]
    assert batch.principal_minor.size == 0


GOOD = {"principal_minor": [100_000], "annual_rate_ppb": [120_000_000], "count": [12],
        "kind": [Kind.ANNUITY]}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"principal_minor": [0]}, "principal_minor"),
        ({"principal_minor": [10**12 + 1]}, "principal_minor"),
        ({"annual_rate_ppb": [-1]}, "annual_rate_ppb"),
        ({"annual_rate_ppb": [10**10 + 1]}, "annual_rate_ppb"),
        ({"count": [0]}, "count"),
        ({"count": [1201]}, "count"),
        ({"kind": [9]}, "kind"),
        ({"kind": [Kind.BULLET]}, "bullet"),
        ({"principal_minor": [1000.0]}, "integer"),
        ({"count": [12, 12]}, "one value per loan"),
        ({"period_days": 0}, "period_days"),
        ({"year_days": 100}, "year_days"),
        ({"rounding": Rounding.DOWN}, "HALF_UP"),
    ],
)
def test_out_of_bounds_inputs_are_refused(changes: dict[str, Any], message: str) -> None:
    arguments = {**GOOD, **changes}
    with pytest.raises(ValueError, match=message):
        batch_schedules(**arguments)


def test_rates_with_more_than_nine_decimals_are_refused() -> None:
    assert rate_ppb("0.123456789") == 123_456_789
    with pytest.raises(ValueError, match="9 decimals"):
        rate_ppb("0.1234567891")
    with pytest.raises(ValueError, match=">= 0"):
        rate_ppb("-0.1")


@pytest.mark.parametrize(
    "changes",
    [
        {"start": date(2025, 1, 31)},  # 30/360 months of 28 and 33 days
        {"day_count": DayCount.ACT_365F},  # actual months differ
        {"rolling": Rolling.FOLLOWING, "calendar": BusinessCalendar(name="weekends")},
    ],
)
def test_irregular_periods_are_refused(changes: dict[str, Any]) -> None:
    terms = loan(LoanType.ANNUITY, 100_000, "0.12", 12, **changes)
    with pytest.raises(ValueError, match="differ"):
        regular_period(terms)
