"""Incoming credit applications: the JSON schema (Pydantic) and its translation to the domain.

Every problem comes back as a :class:`~lendsafe.domain.problems.Problem` naming the field
(``applicant.age``, ``requested.product``, ``characteristics.purpose``…), so the API answers
422 and the CLI exits 2 with the same list, before anything is stored. Money is a decimal
string in major units of the requested product's currency.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lendsafe.domain.lending.product import Product, Term, TermUnit, parse_term
from lendsafe.domain.money import MoneyError, parse_amount
from lendsafe.domain.origination.application import Applicant, Request
from lendsafe.domain.problems import Problem, Refused

AMOUNT_MAX = Decimal("1000000000")
Scalar = str | int | float | bool | None


def _amount(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError('amounts are decimal strings in major units, such as "1000.00"')
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        raise ValueError(f'{value!r} is not a decimal amount such as "1000.00"') from None
    if not number.is_finite():
        raise ValueError("the amount must be finite")
    if number < 0:
        raise ValueError("the amount must not be negative")
    if number > AMOUNT_MAX:
        raise ValueError(f"the amount must not exceed {AMOUNT_MAX}")
    return value.strip()


class Strict(BaseModel):
    """Unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class ApplicantIn(Strict):
    """The applicant's declared situation and identity."""

    age: int = Field(ge=0, le=120, strict=True)
    monthly_income: str
    monthly_obligations: str
    employment: Literal["employed", "self-employed", "unemployed", "retired", "student"]
    region: str = Field(pattern=r"^[A-Za-z]{2}(-[A-Za-z0-9]{1,10})?$")
    borrower: str | None = Field(default=None, min_length=1, max_length=64)
    name: str | None = Field(default=None, max_length=128)
    national_id: str | None = Field(default=None, min_length=4, max_length=64)
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9 -]{6,20}$")

    _money = field_validator("monthly_income", "monthly_obligations", mode="before")(_amount)


class RequestedIn(Strict):
    """The product, amount and term asked for."""

    product: str = Field(min_length=1, max_length=64)
    amount: str
    term: str = Field(pattern=r"^\d{1,4}[dwmDWM]$")

    _money = field_validator("amount", mode="before")(_amount)


class DeviceIn(Strict):
    """Device signals from the app."""

    id: str | None = Field(default=None, min_length=4, max_length=128)
    emulator: bool = False
    rooted: bool = False


class ConsortiumIn(Strict):
    """Shared-lender (consortium) data about the applicant."""

    applications_30d: int | None = Field(default=None, ge=0, le=10_000)
    open_loans: int | None = Field(default=None, ge=0, le=10_000)


class ApplicationIn(Strict):
    """A credit application."""

    application_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{8,64}$")
    applicant: ApplicantIn
    requested: RequestedIn
    device: DeviceIn | None = None
    app: dict[str, Scalar] | None = Field(default=None, max_length=50)
    consortium: ConsortiumIn | None = None
    characteristics: dict[str, Scalar] = Field(default_factory=dict, max_length=100)


@dataclass(frozen=True)
class ParsedApplication:
    """A validated application in domain terms, plus what is stored and fed to the models."""

    body: ApplicationIn
    product: Product
    applicant: Applicant
    request: Request
    stored: dict[str, Any]  # the inputs as logged: identity fields only as SHA-256 hashes
    identity_hashes: dict[str, str]


def field_problems(error: ValidationError) -> list[Problem]:
    """One problem per Pydantic error, naming the field by its dotted path."""
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        problems.append(Problem(f"input.{item['type']}", f"{where}: {message}", field=where))
    return problems


def parse_application(document: object, products: Mapping[str, Product]) -> ParsedApplication:
    """Validate an application document or refuse it with field-level problems."""
    try:
        body = ApplicationIn.model_validate(document)
    except ValidationError as error:
        raise Refused(field_problems(error)) from None
    product = products.get(body.requested.product)
    if product is None:
        raise Refused([Problem("input.unknown_product",
                               f"requested.product: unknown product {body.requested.product!r}; "
                               f"products: {', '.join(sorted(products))}",
                               field="requested.product")])
    cur = product.currency
    amounts = {}
    for where, text in (("applicant.monthly_income", body.applicant.monthly_income),
                        ("applicant.monthly_obligations", body.applicant.monthly_obligations),
                        ("requested.amount", body.requested.amount)):
        try:
            amounts[where] = parse_amount(text, cur)
        except MoneyError as error:
            raise Refused([Problem("input.amount", f"{where}: {error}", field=where)]) from None
    if amounts["requested.amount"] <= 0:
        raise Refused([Problem("input.amount", "requested.amount: must be positive",
                               field="requested.amount")])
    return _translate(body, product, amounts)


def _translate(body: ApplicationIn, product: Product, amounts: dict[str, int]) -> ParsedApplication:
    person = body.applicant
    flags = tuple(name for name, on in (("emulator", body.device and body.device.emulator),
                                        ("rooted", body.device and body.device.rooted)) if on)
    consortium = body.consortium.applications_30d if body.consortium else None
    applicant = Applicant(person.age, amounts["applicant.monthly_income"],
                          amounts["applicant.monthly_obligations"], person.employment,
                          person.region.upper(), flags, consortium)
    term = parse_term(body.requested.term)
    request = Request(product.id, amounts["requested.amount"], term, product.currency)
    hashes = {kind: identity_hash(kind, value) for kind, value in (
        ("national_id", person.national_id), ("phone", person.phone),
        ("device_id", body.device.id if body.device else None)) if value}
    stored = body.model_dump(mode="json")
    for key in ("name", "national_id", "phone"):
        stored["applicant"].pop(key, None)
    if stored.get("device"):
        stored["device"].pop("id", None)
    stored["identity_sha256"] = hashes
    return ParsedApplication(body, product, applicant, request, stored, hashes)


def identity_hash(kind: str, value: str) -> str:
    """SHA-256 of a normalised identity value (what the blocklist and the log keep)."""
    normal = "".join(value.split()).upper() if kind != "phone" else \
        "".join(ch for ch in value if ch.isdigit())
    return hashlib.sha256(f"{kind}:{normal}".encode()).hexdigest()


def term_months(term: Term) -> int:
    """A term in whole months, rounded up (14d → 1, 8w → 2)."""
    if term.unit is TermUnit.MONTHS:
        return term.count
    return max(1, -(-term.approximate_days() // 30))


def model_row(parsed: ParsedApplication, inputs: Mapping[str, str]) -> dict[str, Scalar]:
    """The model's inputs: the given characteristics, plus those derived from the application
    (``inputs`` maps a characteristic to ``applicant.age`` or ``requested.term_months``)."""
    row: dict[str, Scalar] = dict(parsed.body.characteristics)
    derived = {"applicant.age": parsed.applicant.age,
               "requested.term_months": term_months(parsed.request.term)}
    for characteristic, source in inputs.items():
        if row.get(characteristic) is None and source in derived:
            row[characteristic] = derived[source]
    return row
