"""Loan products as validated data: type, price, terms, fees, rounding, allocation, buckets."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Any

from lendsafe.domain.calendar import DayCount, Frequency, Rolling
from lendsafe.domain.money import (
    Currency,
    MoneyError,
    Rounding,
    currency,
    format_amount,
    parse_amount,
    parse_rate,
)
from lendsafe.domain.problems import Problem, Refused


class LoanType(Enum):
    """The repayment shape of a loan."""

    BULLET = "bullet"  # single period: principal and interest at maturity (单期)
    ANNUITY = "annuity"  # equal instalments (等额本息)
    EQUAL_PRINCIPAL = "equal-principal"  # equal principal (等额本金)
    INTEREST_ONLY = "interest-only"  # interest each period, principal at the end


class FeeMode(Enum):
    """How an up-front service fee is paid."""

    DEDUCTED = "deducted"  # taken out of the amount paid out
    FINANCED = "financed"  # added to the principal owed


class RateBasis(Enum):
    """What period the contract rate is quoted for."""

    ANNUAL = "annual"
    TERM = "term"  # a rate for the whole term of a single-period loan (never re-annualised)


class Prepayment(Enum):
    """What an overpayment does to the rest of the schedule."""

    REDUCE_TERM = "reduce-term"
    REDUCE_INSTALLMENT = "reduce-installment"


class TermUnit(Enum):
    """Unit of a loan term."""

    DAYS = "d"
    WEEKS = "w"
    MONTHS = "m"


@dataclass(frozen=True, order=True)
class Term:
    """A loan term such as ``14d`` or ``12m``."""

    count: int
    unit: TermUnit

    def __str__(self) -> str:
        return f"{self.count}{self.unit.value}"

    def approximate_days(self) -> int:
        """Length in days for comparisons across units (a month counts 30 days)."""
        factor = {TermUnit.DAYS: 1, TermUnit.WEEKS: 7, TermUnit.MONTHS: 30}[self.unit]
        return self.count * factor


_TERM_PATTERN = re.compile(r"^\s*(\d{1,4})\s*([dwm])\s*$", re.IGNORECASE)


def parse_term(text: str) -> Term:
    """Parse ``14d``, ``8w`` or ``12m``."""
    match = _TERM_PATTERN.match(str(text))
    if not match or int(match.group(1)) <= 0:
        raise ValueError(f"term {text!r} must look like 14d, 8w or 12m (a positive count)")
    return Term(int(match.group(1)), TermUnit(match.group(2).lower()))


def installment_count(term: Term, frequency: Frequency) -> int:
    """How many instalments of ``frequency`` a term holds (refusing terms that do not fit)."""
    per_year = frequency.periods_per_year
    if term.unit is TermUnit.MONTHS:
        numerator = term.count * per_year
        denominator = 12
    elif term.unit is TermUnit.WEEKS:
        numerator, denominator = term.count * per_year, 52
    else:
        numerator, denominator = term.count, {52: 7, 26: 14, 12: 30}[per_year]
    count = numerator // denominator
    if count < 1:
        raise ValueError(f"term {term} is shorter than one {frequency.value} period")
    return count


@dataclass(frozen=True)
class AllocationRule:
    """Payment allocation order as data (after Apache Fineract's allocation grid).

    ``order`` lists (bucket, component) pairs: buckets are past_due, due, in_advance;
    components are penalty, fee, interest, principal. ``per_installment`` pays each
    instalment fully before the next (horizontal); otherwise each component is paid across
    all instalments of a bucket before the next component (vertical).
    """

    order: tuple[tuple[str, str], ...]
    per_installment: bool = True


BUCKETS = ("past_due", "due", "in_advance")
COMPONENTS = ("penalty", "fee", "interest", "principal")
DEFAULT_ALLOCATION = AllocationRule(
    order=tuple((b, c) for b in BUCKETS for c in COMPONENTS), per_installment=True
)


@dataclass(frozen=True)
class Product:
    """A loan product offered to borrowers."""

    id: str
    name: str
    type: LoanType
    currency: Currency
    jurisdiction: str
    annual_rate: Decimal
    rate_basis: RateBasis
    term_min: Term
    term_max: Term
    amount_min_minor: int
    amount_max_minor: int
    day_count: DayCount
    frequency: Frequency | None
    service_fee_minor: int
    service_fee_rate: Decimal
    fee_mode: FeeMode
    periodic_fee_minor: int
    penalty_annual_rate: Decimal
    grace_days: int
    rounding: Rounding
    calendar: str
    rolling: Rolling
    prepayment: Prepayment
    charge_off_days: int
    allocation: AllocationRule

    def service_fee_for(self, amount_minor: int) -> int:
        """The up-front fee for a principal: flat part plus rate part (rounded by product)."""
        from lendsafe.domain.money import round_decimal

        return self.service_fee_minor + round_decimal(
            self.service_fee_rate * amount_minor, self.rounding
        )


def load_products(mapping: Mapping[str, Any]) -> dict[str, Product]:
    """Build products from parsed TOML/JSON data, refusing the whole set on any problem."""
    problems: list[Problem] = []
    products: dict[str, Product] = {}
    for index, raw in enumerate(mapping.get("product", [])):
        where = f"product[{index}]"
        try:
            product = product_from_mapping(raw)
        except Refused as refused:
            problems.extend(refused.problems)
            continue
        if product.id in products:
            problems.append(Problem("product.duplicate", f"{where}: id {product.id!r} repeats"))
        products[product.id] = product
    if problems:
        raise Refused(problems)
    return products


def product_from_mapping(raw: Mapping[str, Any]) -> Product:
    """Build and validate one product from a mapping of strings (see docs/reference)."""
    reader = _Reader(raw, str(raw.get("id", "?")))
    product = reader.build()
    reader.problems.extend(validate_product(product) if product is not None else [])
    if reader.problems or product is None:
        raise Refused(reader.problems)
    return product


class _Reader:
    """Reads product fields one by one, collecting every problem instead of stopping."""

    def __init__(self, raw: Mapping[str, Any], product_id: str) -> None:
        self.raw = raw
        self.product_id = product_id
        self.problems: list[Problem] = []

    def get(self, key: str, convert: Any, default: Any = None) -> Any:
        if key not in self.raw:
            if default is None:
                self._problem(key, "is required")
            return default
        try:
            return convert(self.raw[key])
        except (ValueError, KeyError, TypeError, MoneyError) as error:
            self._problem(key, f"is invalid: {error}")
            return None

    def _problem(self, key: str, text: str) -> None:
        self.problems.append(
            Problem("product.field", f"product {self.product_id!r}: {key} {text}", field=key)
        )

    def build(self) -> Product | None:
        cur = self.get("currency", currency, default=currency("CNY"))
        money = (lambda v: parse_amount(v, cur)) if cur else (lambda v: 0)
        values = {
            "id": self.get("id", str),
            "name": self.get("name", str, default=str(self.raw.get("id", ""))),
            "type": self.get("type", LoanType),
            "currency": cur,
            "jurisdiction": self.get("jurisdiction", str, default="NONE"),
            "annual_rate": self.get("annual_rate", parse_rate),
            "rate_basis": self.get("rate_basis", RateBasis, default=RateBasis.ANNUAL),
            "term_min": self.get("term_min", parse_term),
            "term_max": self.get("term_max", parse_term),
            "amount_min_minor": self.get("amount_min", money),
            "amount_max_minor": self.get("amount_max", money),
            "day_count": self.get("day_count", DayCount, default=DayCount.ACT_365F),
            "frequency": self.get("frequency", Frequency, default=_absent()),
            "service_fee_minor": self.get("service_fee", money, default=0),
            "service_fee_rate": self.get("service_fee_rate", parse_rate, default=Decimal(0)),
            "fee_mode": self.get("fee_mode", FeeMode, default=FeeMode.FINANCED),
            "periodic_fee_minor": self.get("periodic_fee", money, default=0),
            "penalty_annual_rate": self.get("penalty_annual_rate", parse_rate, Decimal(0)),
            "grace_days": self.get("grace_days", int, default=0),
            "rounding": self.get("rounding", Rounding, default=Rounding.HALF_UP),
            "calendar": self.get("calendar", str, default="none"),
            "rolling": self.get("rolling", Rolling, default=Rolling.NONE),
            "prepayment": self.get("prepayment", Prepayment, default=Prepayment.REDUCE_TERM),
            "charge_off_days": self.get("charge_off_days", int, default=180),
            "allocation": self.get("allocation", parse_allocation, default=DEFAULT_ALLOCATION),
        }
        if values["frequency"] is _ABSENT:
            values["frequency"] = None
        if any(v is None for k, v in values.items() if k != "frequency"):
            return None
        return Product(**values)


class _Absent:
    """Marker for an optional field with no value."""


_ABSENT = _Absent()


def _absent() -> _Absent:
    return _ABSENT


def parse_allocation(raw: Mapping[str, Any]) -> AllocationRule:
    """Parse ``{"order": ["past_due:penalty", ...], "per_installment": true}``."""
    pairs: list[tuple[str, str]] = []
    for item in raw.get("order", []):
        bucket, _, component = str(item).partition(":")
        if bucket not in BUCKETS or component not in COMPONENTS:
            raise ValueError(
                f"allocation step {item!r} must be bucket:component with bucket in "
                f"{BUCKETS} and component in {COMPONENTS}"
            )
        pairs.append((bucket, component))
    missing = {(b, c) for b in BUCKETS for c in COMPONENTS} - set(pairs)
    if missing or len(pairs) != len(set(pairs)):
        raise ValueError(
            "allocation order must name each of the 12 bucket:component steps exactly once"
        )
    return AllocationRule(tuple(pairs), bool(raw.get("per_installment", True)))


def validate_product(product: Product) -> list[Problem]:
    """Cross-field rules of a product (single fields were checked while reading)."""
    checks = [
        (product.annual_rate < 0, "annual_rate must not be negative"),
        (product.amount_min_minor <= 0, "amount_min must be positive"),
        (product.amount_max_minor < product.amount_min_minor, "amount_max is below amount_min"),
        (product.term_max < product.term_min, "term_max is below term_min"),
        (product.grace_days < 0, "grace_days must not be negative"),
        (product.charge_off_days <= 0, "charge_off_days must be positive"),
        (product.penalty_annual_rate < 0, "penalty_annual_rate must not be negative"),
        (product.service_fee_minor < 0 or product.service_fee_rate < 0, "fees must be >= 0"),
        (product.periodic_fee_minor < 0, "periodic_fee must not be negative"),
        (
            (product.penalty_annual_rate * 1_000_000) % 1 != 0,
            "penalty_annual_rate may have at most 6 decimal places",
        ),
        (
            product.type is LoanType.BULLET and product.term_max.unit is not TermUnit.DAYS,
            "a single-period (bullet) product has its term in days (e.g. 7d to 365d)",
        ),
        (
            product.type is not LoanType.BULLET and product.frequency is None,
            "an instalment product needs a frequency (monthly, biweekly or weekly)",
        ),
        (
            product.rate_basis is RateBasis.TERM and product.type is not LoanType.BULLET,
            "a whole-term rate (rate_basis = term) is only for single-period loans",
        ),
    ]
    return [
        Problem("product.invalid", f"product {product.id!r}: {text}")
        for failed, text in checks
        if failed
    ]


def product_definition(product: Product) -> dict[str, Any]:
    """A product in the catalogue's own vocabulary (what ``product_from_mapping`` reads)."""
    cur = product.currency
    document: dict[str, Any] = {
        "id": product.id, "name": product.name, "type": product.type.value,
        "currency": cur.code, "jurisdiction": product.jurisdiction,
        "annual_rate": str(product.annual_rate), "rate_basis": product.rate_basis.value,
        "term_min": str(product.term_min), "term_max": str(product.term_max),
        "amount_min": format_amount(product.amount_min_minor, cur),
        "amount_max": format_amount(product.amount_max_minor, cur),
        "day_count": product.day_count.value,
        "service_fee": format_amount(product.service_fee_minor, cur),
        "service_fee_rate": str(product.service_fee_rate), "fee_mode": product.fee_mode.value,
        "periodic_fee": format_amount(product.periodic_fee_minor, cur),
        "penalty_annual_rate": str(product.penalty_annual_rate),
        "grace_days": product.grace_days, "rounding": product.rounding.value,
        "calendar": product.calendar, "rolling": product.rolling.value,
        "prepayment": product.prepayment.value, "charge_off_days": product.charge_off_days,
        "allocation": {"order": [f"{b}:{c}" for b, c in product.allocation.order],
                       "per_installment": product.allocation.per_installment},
    }
    if product.frequency is not None:
        document["frequency"] = product.frequency.value
    return document
