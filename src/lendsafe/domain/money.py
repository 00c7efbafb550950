"""Money as integer minor units with a currency, rates as Decimal, and named rounding.

Every division of money in lendsafe goes through :func:`divide` or :func:`round_decimal`
with an explicit :class:`Rounding`, so that each rounding rule is visible and testable.
"""

from __future__ import annotations

import decimal
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from fractions import Fraction


class Rounding(Enum):
    """How a fractional amount of minor units becomes a whole number of them."""

    HALF_UP = "half-up"  # ties away from zero (the usual commercial rule)
    HALF_EVEN = "half-even"  # ties to even (banker's rounding)
    DOWN = "down"  # toward zero (truncate)
    UP = "up"  # away from zero
    FLOOR = "floor"
    CEILING = "ceiling"


_DECIMAL_MODES = {
    Rounding.HALF_UP: decimal.ROUND_HALF_UP,
    Rounding.HALF_EVEN: decimal.ROUND_HALF_EVEN,
    Rounding.DOWN: decimal.ROUND_DOWN,
    Rounding.UP: decimal.ROUND_UP,
    Rounding.FLOOR: decimal.ROUND_FLOOR,
    Rounding.CEILING: decimal.ROUND_CEILING,
}


class MoneyError(ValueError):
    """An amount or a rate that cannot be accepted, with a message saying why."""


def divide(numerator: int, denominator: int, rounding: Rounding) -> int:
    """Divide two integers exactly and round the quotient to an integer by ``rounding``."""
    if denominator == 0:
        raise ZeroDivisionError("division of money by zero")
    if denominator < 0:
        numerator, denominator = -numerator, -denominator
    quotient, remainder = divmod(numerator, denominator)  # floor division
    if remainder == 0:
        return quotient
    return quotient + _round_up_step(numerator, remainder, denominator, quotient, rounding)


def _round_up_step(
    numerator: int, remainder: int, denominator: int, quotient: int, rounding: Rounding
) -> int:
    """Return 1 when the floored quotient must move up by one, else 0."""
    twice = 2 * remainder
    if rounding is Rounding.FLOOR:
        return 0
    if rounding is Rounding.CEILING:
        return 1
    if rounding is Rounding.DOWN:
        return 1 if numerator < 0 else 0
    if rounding is Rounding.UP:
        return 0 if numerator < 0 else 1
    if twice != denominator:
        return 1 if twice > denominator else 0
    if rounding is Rounding.HALF_UP:
        return 0 if numerator < 0 else 1
    return quotient % 2  # HALF_EVEN: move up only when the floor is odd


def round_fraction(value: Fraction, rounding: Rounding) -> int:
    """Round an exact fraction to an integer by ``rounding``."""
    return divide(value.numerator, value.denominator, rounding)


def round_decimal(value: Decimal, rounding: Rounding) -> int:
    """Round a Decimal to an integer by ``rounding``."""
    return int(value.to_integral_value(rounding=_DECIMAL_MODES[rounding]))


@dataclass(frozen=True)
class Currency:
    """An ISO 4217 currency and the number of decimal places of its minor unit."""

    code: str
    exponent: int

    @property
    def minor_per_major(self) -> int:
        """How many minor units make one major unit (100 for CNY)."""
        return int(10**self.exponent)


CURRENCIES: dict[str, Currency] = {
    code: Currency(code, exponent)
    for code, exponent in (
        ("CNY", 2), ("USD", 2), ("EUR", 2), ("GBP", 2), ("HKD", 2), ("INR", 2),
        ("IDR", 2), ("PHP", 2), ("KES", 2), ("NGN", 2), ("MXN", 2), ("JPY", 0),
        ("KRW", 0), ("VND", 0), ("KWD", 3),
    )
}


def currency(code: str) -> Currency:
    """Look up a currency by its ISO code."""
    try:
        return CURRENCIES[code.upper()]
    except KeyError:
        known = ", ".join(sorted(CURRENCIES))
        raise MoneyError(f"unknown currency {code!r}; known currencies: {known}") from None


def parse_amount(text: str | int | Decimal, currency_: Currency) -> int:
    """Parse a major-unit decimal string such as ``"1000.00"`` into minor units.

    More decimal places than the currency has is refused rather than rounded: an amount
    that cannot be paid exactly is a mistake to report, not to hide.
    """
    if isinstance(text, (bool, float)):
        raise MoneyError("amounts must be decimal strings such as \"1000.00\", not floats")
    try:
        value = Decimal(str(text).strip())
    except decimal.InvalidOperation:
        raise MoneyError(f"{text!r} is not a decimal amount such as \"1000.00\"") from None
    if not value.is_finite():
        raise MoneyError(f"{text!r} is not a finite amount")
    scaled = value.scaleb(currency_.exponent)
    if scaled != scaled.to_integral_value():
        raise MoneyError(
            f"{text!r} has more than {currency_.exponent} decimal places for {currency_.code}"
        )
    return int(scaled)


def format_amount(amount_minor: int, currency_: Currency) -> str:
    """Format minor units as a major-unit decimal string with the currency's exponent."""
    if currency_.exponent == 0:
        return str(amount_minor)
    sign = "-" if amount_minor < 0 else ""
    whole, fraction = divmod(abs(amount_minor), currency_.minor_per_major)
    return f"{sign}{whole}.{fraction:0{currency_.exponent}d}"


@dataclass(frozen=True, order=True)
class Money:
    """An amount in integer minor units of one currency."""

    amount_minor: int
    currency: Currency

    def __str__(self) -> str:
        return f"{format_amount(self.amount_minor, self.currency)} {self.currency.code}"


def parse_rate(text: str | Decimal, *, name: str = "rate") -> Decimal:
    """Parse a rate such as ``"0.2400"`` (24%) into a Decimal, refusing garbage and floats."""
    if isinstance(text, float):
        raise MoneyError(f"{name} must be a decimal string such as \"0.18\", not a float")
    try:
        value = Decimal(str(text).strip())
    except decimal.InvalidOperation:
        raise MoneyError(f"{name} {text!r} is not a decimal such as \"0.18\"") from None
    if not value.is_finite():
        raise MoneyError(f"{name} {text!r} is not finite")
    return value


def format_rate(rate: Decimal, places: int = 4) -> str:
    """Format a rate as a decimal string with ``places`` decimals, rounding half-up."""
    quantum = Decimal(1).scaleb(-places)
    return str(rate.quantize(quantum, rounding=decimal.ROUND_HALF_UP))


def rate_fraction(rate: Decimal) -> Fraction:
    """The exact fraction a Decimal rate stands for."""
    return Fraction(rate)
