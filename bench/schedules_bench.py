"""Benchmark: 100,000 repayment schedules — numpy-financial loop vs exact reference vs batch.

Generates a seeded portfolio (seed 42) of monthly 30/360 loans — annuity, equal principal and
interest-only, terms 3–36 months, amounts 500.00–50,000.00, annual rates 0.06–0.24 with up to
4 decimals — and times, in one run:

(a) a per-loan loop with numpy_financial (pmt/ipmt/ppmt per loan, each value rounded to cents;
    equal-principal and interest-only loans use the same float-then-round approach);
(b) the exact per-loan reference ``build_schedule`` (Decimal/Fraction), over all loans;
(c) ``batch_schedules`` over all loans: the first (cold) call, then the best of 5 warm calls.

It prints seconds, instalments per second, the ratios (a)/(c) and (b)/(c), the peak memory
of (c) (tracemalloc, in a separate untimed run) and of the process (ru_maxrss), and the number
of instalments where (c) or (a) differ from (b) by at least a cent.

Run: .venv/bin/python bench/schedules_bench.py [--loans 100000] [--reference-sample N]
"""

from __future__ import annotations

import argparse
import resource
import shlex
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import numpy as np
import numpy_financial as npf
from numpy.typing import NDArray

from lendsafe.domain.calendar import DayCount, Frequency
from lendsafe.domain.lending.batch_schedule import (
    BatchSchedules,
    Kind,
    batch_schedules,
    inputs_from_terms,
)
from lendsafe.domain.lending.product import LoanType, Term, TermUnit
from lendsafe.domain.lending.schedule import LoanTerms, build_schedule
from lendsafe.domain.money import Rounding, currency

TYPES = (LoanType.ANNUITY, LoanType.EQUAL_PRINCIPAL, LoanType.INTEREST_ONLY)
TYPE_SHARES = (0.6, 0.3, 0.1)
I64 = NDArray[np.int64]


@dataclass(frozen=True)
class Portfolio:
    """The generated loans as arrays (for (a) and (c)) and as LoanTerms (for (b))."""

    principal_minor: I64
    rate_bp4: I64  # annual rate in units of 10^-4
    count: I64
    type_index: I64  # index into TYPES
    start_day: I64
    start_month: I64

    def kinds(self) -> I64:
        codes = np.array([Kind.ANNUITY, Kind.EQUAL_PRINCIPAL, Kind.INTEREST_ONLY])
        return codes[self.type_index].astype(np.int64)

    def terms(self, index: int) -> LoanTerms:
        return LoanTerms(
            type=TYPES[int(self.type_index[index])],
            currency=currency("CNY"),
            amount_minor=int(self.principal_minor[index]),
            annual_rate=Decimal(int(self.rate_bp4[index])).scaleb(-4),
            start=date(2025, int(self.start_month[index]), int(self.start_day[index])),
            term=Term(int(self.count[index]), TermUnit.MONTHS),
            frequency=Frequency.MONTHLY,
            day_count=DayCount.THIRTY_360,
            rounding=Rounding.HALF_UP,
        )


def generate(loans: int, seed: int = 42) -> Portfolio:
    """A realistic seeded mix of monthly 30/360 loans (start on days 1–28: regular periods)."""
    rng = np.random.default_rng(seed)
    return Portfolio(
        principal_minor=rng.integers(50_000, 5_000_000, loans, endpoint=True),
        rate_bp4=rng.integers(600, 2_400, loans, endpoint=True),
        count=rng.integers(3, 36, loans, endpoint=True),
        type_index=rng.choice(len(TYPES), loans, p=TYPE_SHARES),
        start_day=rng.integers(1, 28, loans, endpoint=True),
        start_month=rng.integers(1, 12, loans, endpoint=True),
    )


def run_batch(portfolio: Portfolio) -> BatchSchedules:
    """(c): all loans in one call (rates 10^-4 → parts per 10^9)."""
    return batch_schedules(
        portfolio.principal_minor, portfolio.rate_bp4 * 100_000, portfolio.count,
        portfolio.kinds(), period_days=30, year_days=360, rounding=Rounding.HALF_UP,
    )


def npf_loan(principal: float, rate: float, count: int, type_index: int) -> tuple[Any, Any]:
    """(a) for one loan: float cash flows from numpy_financial, each rounded to cents."""
    r = rate / 12
    periods = np.arange(1, count + 1)
    if TYPES[type_index] is LoanType.ANNUITY:
        npf.pmt(r, count, -principal)
        interest = npf.ipmt(r, periods, count, -principal)
        paid = npf.ppmt(r, periods, count, -principal)
    elif TYPES[type_index] is LoanType.EQUAL_PRINCIPAL:
        part = np.full(count, principal / count)
        interest = (principal - part * (periods - 1)) * r
        paid = part
    else:
        interest = np.full(count, principal * r)
        paid = np.where(periods == count, principal, 0.0)
    return np.round(paid, 2), np.round(interest, 2)


def run_npf(portfolio: Portfolio, indices: range) -> tuple[I64, I64]:
    """(a) over the loans in ``indices``: flat cent arrays, loan-major."""
    principal = (portfolio.principal_minor / 100).tolist()
    rate = (portfolio.rate_bp4 / 10_000).tolist()
    count, kind = portfolio.count.tolist(), portfolio.type_index.tolist()
    paid, interest = [], []
    for i in indices:
        p, q = npf_loan(principal[i], rate[i], count[i], kind[i])
        paid.append(p)
        interest.append(q)
    return _cents(np.concatenate(paid)), _cents(np.concatenate(interest))


def _cents(major: NDArray[np.float64]) -> I64:
    return np.rint(major * 100).astype(np.int64)


def run_reference(portfolio: Portfolio, indices: range) -> tuple[I64, I64]:
    """(b): build_schedule loan by loan; flat principal and interest arrays, loan-major."""
    paid: list[int] = []
    interest: list[int] = []
    for i in indices:
        for row in build_schedule(portfolio.terms(i)).installments:
            paid.append(row.principal_minor)
            interest.append(row.interest_minor)
    return np.array(paid, dtype=np.int64), np.array(interest, dtype=np.int64)


def timed(function: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    """Best wall time over ``repeat`` runs and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def mismatches(left: tuple[I64, I64], right: tuple[I64, I64]) -> int:
    """Instalments whose principal or interest differ (all of them if the shapes differ)."""
    if left[0].shape != right[0].shape:
        return max(len(left[0]), len(right[0]))
    return int(np.count_nonzero((left[0] != right[0]) | (left[1] != right[1])))


def peak_batch_memory(portfolio: Portfolio) -> int:
    """Peak bytes allocated during (c), traced in a separate untimed run."""
    tracemalloc.start()
    run_batch(portfolio)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def report(args: argparse.Namespace) -> None:
    portfolio = generate(args.loans)
    total = int(portfolio.count.sum())
    every = range(args.loans)
    print(f"loans: {args.loans:,}  instalments: {total:,}  (seed 42, monthly 30/360)")
    cold_c, _ = timed(lambda: run_batch(portfolio))
    time_c, batch = timed(lambda: run_batch(portfolio), repeat=5)
    check = inputs_from_terms([portfolio.terms(i) for i in range(min(1000, args.loans))])
    assert np.array_equal(check.count, portfolio.count[:1000]), "generator/terms disagree"
    time_a, flows_a = timed(lambda: run_npf(portfolio, every))
    sample = range(min(args.reference_sample or args.loans, args.loans))
    time_b, flows_b = timed(lambda: run_reference(portfolio, sample))
    scale = args.loans / len(sample)
    rows_c = (batch.principal_minor, batch.interest_minor)
    rows_b_total = len(flows_b[0])
    cut = int(batch.offsets[len(sample)])
    print_times(time_a, time_b * scale, time_c, total, scale)
    print(f"(c) first, cold call (fresh memory pages): {cold_c:.3f} s → (a)/(c cold) "
          f"{time_a / cold_c:,.0f}×")
    print(f"cent mismatches (c) vs (b): {mismatches((rows_c[0][:cut], rows_c[1][:cut]), flows_b)}"
          f" of {rows_b_total:,} instalments ({len(sample):,} loans)")
    a_cut = (flows_a[0][:cut], flows_a[1][:cut])
    print(f"cent mismatches (a) vs (b): {mismatches(a_cut, flows_b)} of {rows_b_total:,}")
    print(f"annuity payments recomputed exactly (near a half cent): {near_ties(portfolio)}")
    print(f"peak memory of (c) (tracemalloc): {peak_batch_memory(portfolio) / 2**20:.1f} MiB")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of the whole process (ru_maxrss): {rss:.0f} MiB")


def near_ties(portfolio: Portfolio) -> int:
    """How many annuity payments fell within the float safety margin of a half cent."""
    from lendsafe.domain.lending import batch_schedule as engine

    calls = 0
    original = engine.annuity_payment

    def counting(*args: Any) -> int:
        nonlocal calls
        calls += 1
        return original(*args)

    engine.annuity_payment = counting  # type: ignore[assignment]
    try:
        run_batch(portfolio)
    finally:
        engine.annuity_payment = original
    return calls


def print_times(time_a: float, time_b: float, time_c: float, total: int, scale: float) -> None:
    note = f" (scaled ×{scale:.1f} from a sample)" if scale != 1 else ""
    for label, seconds in (("(a) numpy_financial loop", time_a),
                           (f"(b) build_schedule loop{note}", time_b),
                           ("(c) batch_schedules, best of 5 warm", time_c)):
        print(f"{label:<48} {seconds:9.3f} s  {total / seconds:14,.0f} instalments/s")
    print(f"ratio (a)/(c): {time_a / time_c:,.0f}×   ratio (b)/(c): {time_b / time_c:,.0f}×")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loans", type=int, default=100_000)
    parser.add_argument("--reference-sample", type=int, default=0,
                        help="time (b) on the first N loans only and scale (0 = all loans)")
    args = parser.parse_args()
    print("command:", shlex.join([sys.executable, *sys.argv]))
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, "
          f"numpy_financial {npf.__version__}")
    report(args)


if __name__ == "__main__":
    main()
