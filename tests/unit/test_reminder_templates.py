"""Unit tests for reminder message rendering: money, dates, placeholders, errors."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from lendsafe.domain.reminders.messages import (
    Money,
    MoneyFormatError,
    format_date,
    format_money,
)
from lendsafe.domain.reminders.templates import (
    TemplateError,
    default_catalog,
    load_catalog,
    render,
)

FULL_CONTEXT: dict[str, object] = {
    "amount": Money(100690, "CNY"),
    "due_date": date(2025, 3, 15),
    "loan_ref": "LS-0001",
    "how_to_pay": "PAY-HERE",
    "days_left": 3,
    "days_overdue": 2,
}


@pytest.mark.parametrize(
    ("minor", "currency", "language", "expected"),
    [
        (100690, "CNY", "zh", "¥1,006.90"),
        (100690, "CNY", "en", "CNY 1,006.90"),
        (5, "CNY", "zh", "¥0.05"),
        (0, "CNY", "en", "CNY 0.00"),
        (123456789, "CNY", "en", "CNY 1,234,567.89"),
        (-100690, "CNY", "zh", "-¥1,006.90"),
        (123456, "JPY", "en", "JPY 123,456"),
        (1234567, "KWD", "en", "KWD 1,234.567"),
        (1000, "USD", "zh", "US$10.00"),
        (1000, "INR", "zh", "INR 10.00"),
    ],
)
def test_money_formatting(minor: int, currency: str, language: str, expected: str) -> None:
    assert format_money(Money(minor, currency), language) == expected


def test_money_rejects_floats_and_unknown_currencies() -> None:
    with pytest.raises(MoneyFormatError, match="int minor units"):
        Money(1006.9, "CNY")  # type: ignore[arg-type]
    with pytest.raises(MoneyFormatError, match="XXX"):
        Money(100, "XXX")


def test_date_formatting() -> None:
    assert format_date(date(2025, 3, 5), "zh") == "2025年3月5日"
    assert format_date(date(2025, 12, 31), "en") == "31 Dec 2025"


@pytest.mark.parametrize("template_id", sorted(default_catalog().template_ids()))
@pytest.mark.parametrize("language", ["zh", "en"])
def test_every_shipped_template_renders(template_id: str, language: str) -> None:
    msg = render(template_id, language, FULL_CONTEXT)
    amount = "¥1,006.90" if language == "zh" else "CNY 1,006.90"
    day = "2025年3月15日" if language == "zh" else "15 Mar 2025"
    assert amount in msg.body and day in msg.body
    assert "LS-0001" in msg.body and "PAY-HERE" in msg.body
    assert "{" not in msg.body + msg.subject and "}" not in msg.body + msg.subject
    assert msg.subject and msg.language == language and msg.template_id == template_id


def test_shipped_languages_use_the_same_placeholders() -> None:
    catalog = default_catalog()
    for template_id in catalog.template_ids():
        zh, en = catalog.get(template_id, "zh"), catalog.get(template_id, "en")
        assert zh.fields == en.fields, template_id


def test_missing_placeholder_names_template_and_field() -> None:
    context = {k: v for k, v in FULL_CONTEXT.items() if k != "due_date"}
    with pytest.raises(TemplateError) as info:
        render("overdue_notice", "en", context)
    assert info.value.template_id == "overdue_notice"
    assert info.value.field == "due_date"
    assert "overdue_notice" in str(info.value) and "due_date" in str(info.value)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("Pay {amount", "malformed"),
        ("Pay } now", "malformed"),
        ("Pay {amount:>10}", "format spec"),
        ("Pay {amount!r}", "format spec"),
        ("Pay {0}", "identifier"),
        ("Pay {}", "identifier"),
        ("Pay {amount.currency}", "identifier"),
        ("Pay {amount[0]}", "identifier"),
    ],
)
def test_malformed_templates_are_rejected_at_load(body: str, reason: str) -> None:
    with pytest.raises(TemplateError, match=reason) as info:
        load_catalog({"bad_one": {"en": {"body": body}}})
    assert info.value.template_id == "bad_one" and info.value.field == "body"


def test_catalog_structure_errors() -> None:
    with pytest.raises(TemplateError, match="unsupported language"):
        load_catalog({"t": {"fr": {"body": "x"}}})
    with pytest.raises(TemplateError, match="missing or not a string"):
        load_catalog({"t": {"en": {"subject": "only a subject"}}})
    with pytest.raises(TemplateError, match="unknown key") as info:
        load_catalog({"t": {"en": {"body": "x", "footer": "y"}}})
    assert info.value.field == "footer"


def test_unknown_template_or_language() -> None:
    catalog = load_catalog({"t": {"en": {"body": "x"}}})
    with pytest.raises(TemplateError, match="unknown template id"):
        render("nope", "en", {}, catalog=catalog)
    with pytest.raises(TemplateError, match="no text in this language"):
        render("t", "zh", {}, catalog=catalog)


def test_literal_braces_and_plain_values() -> None:
    catalog = load_catalog({"t": {"en": {"subject": "{loan_ref}", "body": "{{x}} {n} {s}"}}})
    msg = render("t", "en", {"n": 7, "s": "ok", "loan_ref": "R1"}, catalog=catalog)
    assert (msg.subject, msg.body) == ("R1", "{x} 7 ok")


@pytest.mark.parametrize("value", [1006.9, datetime(2025, 3, 15), True, None, [1]])
def test_unsupported_context_values_name_the_field(value: object) -> None:
    catalog = load_catalog({"t": {"en": {"body": "Pay {amount}"}}})
    with pytest.raises(TemplateError) as info:
        render("t", "en", {"amount": value}, catalog=catalog)
    assert info.value.field == "amount"
