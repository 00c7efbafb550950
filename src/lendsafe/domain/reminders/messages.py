"""Message values for reminders: money and date formatting per language, rendered output.

Pure: money is an ``int`` amount in minor units plus an ISO 4217 code and is
formatted with the currency's exponent using integer arithmetic only (never a
float). Dates are formatted from ``datetime.date`` without any locale database,
so the output is the same on every machine.

Formats (``zh`` / ``en``):

* money: ``¥1,006.90`` / ``CNY 1,006.90`` (zh uses a symbol where one is
  unambiguous in mainland usage, otherwise the code, as en always does);
* dates: ``2025年3月15日`` / ``15 Mar 2025``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Final

SUPPORTED_LANGUAGES: Final = ("zh", "en")

#: ISO 4217 minor-unit exponents for the currencies lendsafe may lend in.
CURRENCY_EXPONENTS: Final[dict[str, int]] = {
    "CNY": 2, "HKD": 2, "USD": 2, "EUR": 2, "GBP": 2, "AUD": 2, "NZD": 2, "SGD": 2,
    "INR": 2, "PHP": 2, "IDR": 2, "MYR": 2, "THB": 2, "KES": 2, "NGN": 2, "MXN": 2,
    "JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "UGX": 0,
    "KWD": 3, "BHD": 3, "JOD": 3, "OMR": 3, "TND": 3,
}

_ZH_SYMBOLS: Final[dict[str, str]] = {"CNY": "¥", "HKD": "HK$", "USD": "US$", "EUR": "€"}
_EN_MONTHS: Final = (
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
)


class MoneyFormatError(ValueError):
    """An amount cannot be formatted (unknown currency, not an int)."""


@dataclass(frozen=True)
class Money:
    """An amount in integer minor units of ``currency`` (ISO 4217 code)."""

    amount_minor: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.amount_minor, bool) or not isinstance(self.amount_minor, int):
            raise MoneyFormatError(
                f"amount must be int minor units, got {type(self.amount_minor).__name__}"
            )
        if self.currency not in CURRENCY_EXPONENTS:
            raise MoneyFormatError(f"unknown currency {self.currency!r} (no exponent known)")


@dataclass(frozen=True)
class RenderedMessage:
    """A message ready for a channel: subject may be empty for SMS-like channels."""

    template_id: str
    language: str
    subject: str
    body: str


def format_number(money: Money) -> str:
    """``1,006.90`` style digits with thousands separators, from minor units."""
    exponent = CURRENCY_EXPONENTS[money.currency]
    sign = "-" if money.amount_minor < 0 else ""
    units, minor = divmod(abs(money.amount_minor), 10**exponent)
    text = f"{units:,}"
    if exponent:
        text += "." + str(minor).rjust(exponent, "0")
    return sign + text


def format_money(money: Money, language: str) -> str:
    """Money for ``language``: ``¥1,006.90`` (zh) or ``CNY 1,006.90`` (en)."""
    _check_language(language)
    digits = format_number(money)
    sign, digits = ("-", digits[1:]) if digits.startswith("-") else ("", digits)
    if language == "zh" and money.currency in _ZH_SYMBOLS:
        return f"{sign}{_ZH_SYMBOLS[money.currency]}{digits}"
    return f"{sign}{money.currency} {digits}"


@lru_cache(maxsize=4_096)  # a dispatch batch writes the same few due dates again and again
def format_date(day: date, language: str) -> str:
    """A calendar date for ``language``: ``2025年3月15日`` (zh) or ``15 Mar 2025`` (en)."""
    _check_language(language)
    if language == "zh":
        return f"{day.year}年{day.month}月{day.day}日"
    return f"{day.day} {_EN_MONTHS[day.month - 1]} {day.year}"


def _check_language(language: str) -> None:
    if language not in SUPPORTED_LANGUAGES:
        raise ValueError(f"unsupported language {language!r}; supported: {SUPPORTED_LANGUAGES}")
