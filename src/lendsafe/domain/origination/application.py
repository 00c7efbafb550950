"""The vocabulary of an application: who applies, what they ask for, what we know of them.

Everything here is already validated (money in integer minor units, the term parsed); the
service turns the incoming JSON into these values and loads the :class:`BorrowerFacts`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from lendsafe.domain.calendar import BusinessCalendar
from lendsafe.domain.lending.jurisdiction import Jurisdiction
from lendsafe.domain.lending.product import Product, Term
from lendsafe.domain.money import Currency


@dataclass(frozen=True)
class Applicant:
    """The applicant's declared situation (amounts in minor units of the request currency)."""

    age: int
    monthly_income_minor: int
    monthly_obligations_minor: int
    employment: str
    region: str
    device_flags: tuple[str, ...] = ()  # e.g. ("emulator", "rooted")
    applications_30d: int | None = None  # consortium data, when known


@dataclass(frozen=True)
class Request:
    """What is asked for: a product, an amount and a term."""

    product: str
    amount_minor: int
    term: Term
    currency: Currency


@dataclass(frozen=True)
class BorrowerFacts:
    """What the lender's own records say about the applicant."""

    open_loan_ids: tuple[int, ...] = ()
    open_bullet_loan_ids: tuple[int, ...] = ()
    last_charged_off_on: date | None = None
    blocklisted: tuple[str, ...] = ()  # kinds that matched, e.g. ("national_id",)


@dataclass(frozen=True)
class Market:
    """Products, their jurisdictions and calendars, and the business date of the decision."""

    products: Mapping[str, Product]
    jurisdictions: Mapping[str, Jurisdiction]
    calendars: Mapping[str, BusinessCalendar]
    on: date


@dataclass(frozen=True)
class Case:
    """Everything a decision looks at besides the policy and the market."""

    applicant: Applicant
    request: Request
    facts: BorrowerFacts
    pd: Decimal
    model_reasons: tuple[tuple[str, str], ...] = field(default=())  # (characteristic, value)
