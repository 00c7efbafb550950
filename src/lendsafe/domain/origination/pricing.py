"""Pricing offers for decisions: quote facts shared across applicants, the cap proven cheaply.

What the credit rules read of a quote — the largest instalment as a monthly amount, the
principal owed, the number of instalments and the jurisdiction's problems with the loan —
depends on the product, the amount, the term, the start date and the rate, never on the
applicant. One :class:`Pricing` (one per catalogue) keeps these :class:`Priced` facts for
every application it prices, in a bounded cache, with the disclosed rates it was asked to
show (a second cache), the last full quotes and the last schedules (two small ones: the
schedule built for the facts also serves the disclosed rate, not built twice).

The disclosed rate needs an IRR search (Appendix J, 40 digits, ~0.3–0.6 ms). A decision needs
it only for the offers it shows and to check the legal cap. For an instalment offer shown,
:func:`~lendsafe.domain.origination.disclosure.disclosed_rate` finds the same rate in floats
and proves it (~0.04 ms; the 40-digit search only when the proof fails, or for a single
payment); :func:`cap_proven` checks the cap
without it, from the schedule alone, and the exact quote decides only when that proof fails
(near or above the cap). The proof, for the regulation-Z rate that ``price`` discloses:

*Instalments* (unit period = the payment frequency, ``k`` periods a year). The periodic rate
``i*`` solves ``N(i) = Σ P_j / ((1 + f_j i)(1 + i)^t_j) − D = 0`` (one advance ``D`` at the
start, repayments ``P_j > 0`` after it), and ``N`` decreases in ``i``; so ``i* ≤ c`` — the cap
as a periodic rate, ``cap / k`` — exactly when ``N(c) ≤ 0``. Upper bounds of each term:
``(1 + f i)(1 + i)^t ≥ (1 + i)^(t + f)`` (Bernoulli, ``0 ≤ f < 1``); ``t + f ≥ x = days / L``
with ``L`` = 7 or 14 days for weekly units (exact) and 31 for months (an Appendix J month
spans at most 31 days); and with ``x = n + φ``, ``(1 + i)^-φ ≤ 1 − φ i / (1 + i)`` (the chord of
a convex function on [0, 1]). The bound is evaluated exactly in integers; when it is ≤ 0 the
rate, and so its 10-place rounding, is within the cap.

*A single payment* (term under a year): Appendix J (b)(5)(vi)/(vii) discloses
``(P / D − 1) × 12 / m`` for a term of ``m`` whole months and ``× 365 / days`` otherwise; as a
month spans at most 31 days, both are at most ``(P / D − 1) × 372 / days``.

Only the ``disclosed`` cap measure is proven this way; ``compound`` caps use the exact quote.
``Pricing(exact=True)`` never uses either proof (the reference the fast path is tested
against); nor does a ``Pricing`` given its own ``quote`` function.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from contextlib import suppress
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction
from typing import Generic, TypeVar

from lendsafe.domain.calendar import BusinessCalendar, Frequency
from lendsafe.domain.lending.apr import AprResult, Method, annual_rate
from lendsafe.domain.lending.jurisdiction import Jurisdiction, QuoteFacts, check_quote
from lendsafe.domain.lending.product import LoanType, Product, Term
from lendsafe.domain.lending.quote import (
    UNIT_FOR_FREQUENCY,
    Quote,
    cash_flows,
    price,
    quote_facts,
    terms_for_product,
)
from lendsafe.domain.lending.schedule import LoanTerms, Schedule, build_schedule
from lendsafe.domain.origination.disclosure import disclosed_rate
from lendsafe.domain.problems import Problem, Refused

FACTS_CACHE_SIZE = 65_536  # ~0.3 KB each
RATES_CACHE_SIZE = 65_536  # ~0.5 KB each
QUOTES_CACHE_SIZE = 512  # full schedules, ~2–15 KB each
SCHEDULES_CACHE_SIZE = 128  # the schedules of the latest facts, for their disclosed rates
MONTH_DAYS_MAX = 31
SINGLE_PAYMENT_DAYS_MAX = 364  # shorter than any year: Appendix J single-payment rule
UNIT_DAYS = {Frequency.WEEKLY: (52, 7), Frequency.BIWEEKLY: (26, 14),
             Frequency.MONTHLY: (12, MONTH_DAYS_MAX)}  # periods a year, days bound per period
_ZERO = Decimal(0)
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
Key = tuple[str, int, int, str, date, Decimal]  # product, amount, term count and unit, start, rate
Facts = tuple[int, int, int, int, tuple[Problem, ...]]  # payment n/d, principal, count, legal


@dataclass(frozen=True, slots=True)
class Priced:
    """What the rules read of a quote at one product, amount, term, start and rate."""

    product: Product
    amount_minor: int
    term: Term
    start: date
    calendar: BusinessCalendar
    annual_rate: Decimal
    payment_monthly: Fraction  # the largest instalment as a monthly amount
    principal_minor: int
    installments: int
    legal: tuple[Problem, ...]  # the jurisdiction's problems with the exact quote

    def terms(self) -> LoanTerms:
        """The loan terms these facts were computed from."""
        return terms_for_product(self.product, self.amount_minor, self.term, self.start,
                                 self.calendar, self.annual_rate)


class Bounded(Generic[K, V]):
    """A dictionary that forgets its oldest entry when full (safe under the GIL)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: dict[K, V] = {}

    def get(self, key: K, make: Callable[[], V]) -> V:
        """The value for ``key``, made (and kept) on first use."""
        try:
            return self.items[key]
        except KeyError:
            pass
        value = make()
        self.put(key, value)
        return value

    def put(self, key: K, value: V) -> None:
        """Keep ``value`` for ``key``, forgetting the oldest entry when full."""
        if len(self.items) >= self.size and key not in self.items:
            with suppress(KeyError, RuntimeError, StopIteration):  # another thread was first
                del self.items[next(iter(self.items))]
        self.items[key] = value

    def clear(self) -> None:
        """Forget everything."""
        self.items.clear()


class Pricing:
    """Prices offers for one catalogue (see the module docstring)."""

    def __init__(self, quote: Callable[[LoanTerms], Quote] = price, *, exact: bool = False,
                 facts_size: int = FACTS_CACHE_SIZE, rates_size: int = RATES_CACHE_SIZE,
                 quotes_size: int = QUOTES_CACHE_SIZE,
                 schedules_size: int = SCHEDULES_CACHE_SIZE) -> None:
        self.price, self.exact = quote, exact
        self.fast_rates = not exact and quote is price
        # Keys and values of the two large caches hold only atomic values (str, int, date,
        # Decimal), so the garbage collector does not track them: a full collection over tens
        # of thousands of tracked cache entries paused every request for ~0.1 s (measured).
        self.facts: Bounded[Key, Facts | None] = Bounded(facts_size)
        self.rates: Bounded[Key, Decimal] = Bounded(rates_size)
        self.quotes: Bounded[Key, Quote] = Bounded(quotes_size)
        self.schedules: Bounded[Key, Schedule] = Bounded(schedules_size)
        # the product definitions and jurisdiction rules the caches were priced under (the
        # objects themselves: an approved change replaces them, and then nothing cached holds)
        self.priced_under: dict[str, Product | Jurisdiction] = {}

    def priced(self, product: Product, amount_minor: int, term: Term, start: date,
               calendar: BusinessCalendar, rate: Decimal, rules: Jurisdiction) -> Priced | None:
        """The facts of the quote, or None when the product does not lend these terms."""
        under, code = self.priced_under, f"jurisdiction:{rules.code}"
        if under.get(product.id) is not product or under.get(code) is not rules:
            self._changed(product, rules)
        key = (product.id, amount_minor, term.count, term.unit.value, start, rate)
        facts = self.facts.get(key, lambda: self._facts(product, amount_minor, term, start,
                                                         calendar, rate, rules, key))
        if facts is None:
            return None
        numerator, denominator, principal_minor, installments, legal = facts
        return Priced(product, amount_minor, term, start, calendar, rate,
                      Fraction(numerator, denominator), principal_minor, installments, legal)

    def quote(self, priced: Priced) -> Quote:
        """The full quote (schedule and disclosed rates) behind ``priced``."""
        return self.quotes.get(_key(priced), lambda: self._quote(priced))

    def disclosed(self, priced: Priced) -> Decimal:
        """The disclosed annual rate (IRR method) of the quote behind ``priced``."""
        return self.rates.get(_key(priced), lambda: self._disclosed(priced))

    def clear(self) -> None:
        """Forget every cached fact, rate, quote and schedule."""
        self.facts.clear()
        self.rates.clear()
        self.quotes.clear()
        self.schedules.clear()

    def _changed(self, product: Product, rules: Jurisdiction) -> None:
        """A product or jurisdiction seen before came back as another object (a changed
        definition or rules): forget every price (changes are rare)."""
        if product.id in self.priced_under or f"jurisdiction:{rules.code}" in self.priced_under:
            self.clear()
        self.priced_under[product.id] = product
        self.priced_under[f"jurisdiction:{rules.code}"] = rules

    def _disclosed(self, priced: Priced) -> Decimal:
        key = _key(priced)
        if not self.fast_rates or key in self.quotes.items:
            return self.quote(priced).annual_rate_disclosed
        terms = priced.terms()
        schedule = self.schedules.get(key, lambda: build_schedule(terms))
        rate = disclosed_rate(terms, schedule)
        if rate is not None:
            return rate
        # what ``price`` discloses, on this schedule (no full quote kept: fewer objects for
        # the garbage collector to walk)
        return _apr(terms, schedule).annual_rate_nominal

    def _quote(self, priced: Priced) -> Quote:
        terms, key = priced.terms(), _key(priced)
        schedule = self.schedules.items.get(key) if self.fast_rates else None
        if schedule is None:
            quote = self.price(terms)
        else:  # what ``price`` does, on the schedule already built for the facts
            quote = Quote(terms, schedule, _apr(terms, schedule))
        self.rates.get(key, lambda: quote.annual_rate_disclosed)
        return quote

    def _facts(self, product: Product, amount_minor: int, term: Term, start: date,
               calendar: BusinessCalendar, rate: Decimal, rules: Jurisdiction,
               key: Key) -> Facts | None:
        try:
            terms = terms_for_product(product, amount_minor, term, start, calendar, rate)
        except Refused:
            return None
        bare = Priced(product, amount_minor, term, start, calendar, rate, Fraction(0), 0, 0, ())
        if self.exact:
            quote = self.quote(bare)
            schedule, legal = quote.schedule, check_quote(rules, quote_facts(quote))
        else:
            schedule = build_schedule(terms)
            if self.fast_rates:
                self.schedules.put(key, schedule)
            if cap_proven(rules, terms, schedule):
                legal = check_quote(rules, rateless_facts(terms, schedule))
            elif rules.cap_measure == "disclosed" and self.fast_rates and (
                    rate_disclosed := disclosed_rate(terms, schedule)) is not None:
                self.rates.put(key, rate_disclosed)
                legal = check_quote(rules, rateless_facts(terms, schedule, rate_disclosed))
            else:
                quote = self.quote(bare)
                legal = check_quote(rules, quote_facts(quote))
        numerator, denominator = payment_monthly(terms, schedule).as_integer_ratio()
        return (numerator, denominator, schedule.principal_minor, len(schedule.installments),
                tuple(legal))


def _apr(terms: LoanTerms, schedule: Schedule) -> AprResult:
    """The rates ``price(terms)`` discloses, for its schedule ``schedule``."""
    unit = None if terms.frequency is None else UNIT_FOR_FREQUENCY[terms.frequency]
    return annual_rate(cash_flows(terms, schedule), Method.REG_Z, unit)


def _key(priced: Priced) -> Key:
    return (priced.product.id, priced.amount_minor, priced.term.count, priced.term.unit.value,
            priced.start, priced.annual_rate)


def payment_monthly(terms: LoanTerms, schedule: Schedule) -> Fraction:
    """The largest instalment, as a monthly amount (a single payment counts whole)."""
    largest = max(i.total_minor for i in schedule.installments)
    frequency = terms.frequency
    if terms.type is LoanType.BULLET or frequency is None:
        return Fraction(largest)
    return Fraction(largest * frequency.periods_per_year, 12)


def rateless_facts(terms: LoanTerms, schedule: Schedule,
                   disclosed: Decimal = _ZERO) -> QuoteFacts:
    """The quote facts with the rates at zero (or only the disclosed rate): for the checks
    once the cap is proven (or of a ``disclosed`` cap measure, which reads no other rate)."""
    return QuoteFacts(
        type=terms.type, amount_minor=terms.amount_minor, currency=terms.currency,
        term_days=(schedule.maturity_date - terms.start).days, fee_mode=terms.fee_mode,
        upfront_fee_minor=schedule.upfront_fee_minor, annual_rate_disclosed=disclosed,
        annual_rate_compound=_ZERO)


def cap_proven(rules: Jurisdiction, terms: LoanTerms, schedule: Schedule) -> bool:
    """True when the disclosed rate is proven within the cap without solving for it."""
    cap = rules.annual_cost_cap
    if cap is None:
        return True
    if rules.cap_measure != "disclosed" or cap < 0 or schedule.disbursed_minor <= 0:
        return False
    payments = [(i.due_date - terms.start).days for i in schedule.installments]
    amounts = [i.total_minor for i in schedule.installments]
    if min(payments) <= 0 or min(amounts) < 0:
        return False
    cap_num, cap_den = cap.as_integer_ratio()
    if terms.frequency is None:
        if len(payments) != 1 or payments[0] > SINGLE_PAYMENT_DAYS_MAX:
            return False
        cost = amounts[0] - schedule.disbursed_minor
        return cost * 12 * MONTH_DAYS_MAX * cap_den <= \
            cap_num * schedule.disbursed_minor * payments[0]
    if terms.frequency not in UNIT_DAYS:
        return False
    per_year, days_per_unit = UNIT_DAYS[terms.frequency]
    return _discounted_within(cap_num, cap_den * per_year, days_per_unit,
                              list(zip(payments, amounts, strict=True)),
                              schedule.disbursed_minor)


def _discounted_within(a: int, b: int, days_per_unit: int, payments: list[tuple[int, int]],
                       disbursed_minor: int) -> bool:
    """Σ P (1 + i)^-n (1 − φ i / (1 + i)) ≤ D at i = a / b, with n + φ = days / L, exactly.

    Over the common denominator ``(a + b)^(N + 1) · L``:
    ``Σ P · b^n · (a + b)^(N − n) · ((a + b) L − r a) ≤ D · L · (a + b)^(N + 1)``,
    where ``n, r = divmod(days, L)`` and ``N`` is the largest ``n``.
    """
    split = [(*divmod(days, days_per_unit), amount) for days, amount in payments]
    most = max(n for n, _, _ in split)
    base = a + b
    powers_b, powers_base = [1], [1]
    for _ in range(most + 1):
        powers_b.append(powers_b[-1] * b)
        powers_base.append(powers_base[-1] * base)
    total = 0
    for n, rest, amount in split:
        total += amount * powers_b[n] * powers_base[most - n] * (base * days_per_unit - rest * a)
    return total <= disbursed_minor * days_per_unit * powers_base[most + 1]
