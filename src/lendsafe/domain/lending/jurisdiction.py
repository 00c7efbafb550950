"""Jurisdictions as data: caps on the annualised cost, amount and term limits, product rules.

A quote or a product that breaks a rule is refused with problems that name the rule and
the figures (see :func:`check_quote`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from lendsafe.domain.lending.product import FeeMode, LoanType
from lendsafe.domain.money import Currency, currency, format_amount, format_rate, parse_amount
from lendsafe.domain.problems import Problem


@dataclass(frozen=True)
class Jurisdiction:
    """The lending rules of one jurisdiction."""

    code: str
    name: str
    currency: Currency
    annual_cost_cap: Decimal | None
    cap_measure: str
    amount_min_minor: int
    amount_max_minor: int
    bullet_term_max_days: int
    term_max_months: int
    fee_deduction_allowed: bool
    single_period_rollover_allowed: bool
    sources: tuple[str, ...]


def load_jurisdictions(mapping: Mapping[str, Any]) -> dict[str, Jurisdiction]:
    """Build jurisdictions from parsed TOML data."""
    result: dict[str, Jurisdiction] = {}
    for raw in mapping.get("jurisdiction", []):
        cur = currency(str(raw["currency"]))
        cap = raw.get("annual_cost_cap")
        measure = str(raw.get("cap_measure", "disclosed"))
        if measure not in ("disclosed", "compound"):
            raise ValueError(f"jurisdiction {raw['code']}: cap_measure {measure!r} is unknown")
        result[str(raw["code"])] = Jurisdiction(
            code=str(raw["code"]),
            name=str(raw.get("name", raw["code"])),
            currency=cur,
            annual_cost_cap=Decimal(str(cap)) if cap is not None else None,
            cap_measure=measure,
            amount_min_minor=parse_amount(str(raw["amount_min"]), cur),
            amount_max_minor=parse_amount(str(raw["amount_max"]), cur),
            bullet_term_max_days=int(raw["bullet_term_max_days"]),
            term_max_months=int(raw["term_max_months"]),
            fee_deduction_allowed=bool(raw["fee_deduction_allowed"]),
            single_period_rollover_allowed=bool(raw["single_period_rollover_allowed"]),
            sources=tuple(str(s) for s in raw.get("sources", [])),
        )
    return result


def jurisdiction_definition(rules: Jurisdiction) -> dict[str, Any]:
    """The data-file form of ``rules`` (what :func:`load_jurisdictions` reads back)."""
    cur = rules.currency
    definition: dict[str, Any] = {
        "code": rules.code, "name": rules.name, "currency": cur.code,
        "cap_measure": rules.cap_measure,
        "amount_min": format_amount(rules.amount_min_minor, cur),
        "amount_max": format_amount(rules.amount_max_minor, cur),
        "bullet_term_max_days": rules.bullet_term_max_days,
        "term_max_months": rules.term_max_months,
        "fee_deduction_allowed": rules.fee_deduction_allowed,
        "single_period_rollover_allowed": rules.single_period_rollover_allowed,
        "sources": list(rules.sources),
    }
    if rules.annual_cost_cap is not None:
        definition["annual_cost_cap"] = str(rules.annual_cost_cap)
    return definition


@dataclass(frozen=True)
class QuoteFacts:
    """What a jurisdiction checks about a quote."""

    type: LoanType
    amount_minor: int
    currency: Currency
    term_days: int
    fee_mode: FeeMode
    upfront_fee_minor: int
    annual_rate_disclosed: Decimal
    annual_rate_compound: Decimal


def check_quote(rules: Jurisdiction, facts: QuoteFacts) -> list[Problem]:
    """Every rule of ``rules`` the quote breaks, each naming the rule and the figures."""
    cur = facts.currency
    problems: list[Problem] = []
    amount = format_amount(facts.amount_minor, cur)
    if not rules.amount_min_minor <= facts.amount_minor <= rules.amount_max_minor:
        low = format_amount(rules.amount_min_minor, cur)
        high = format_amount(rules.amount_max_minor, cur)
        problems.append(Problem(
            f"{rules.code}.amount_range",
            f"{rules.code} allows amounts from {low} to {high}; {amount} is outside",
            field="principal", figures={"amount": amount, "min": low, "max": high},
        ))
    problems.extend(_term_problems(rules, facts))
    if facts.fee_mode is FeeMode.DEDUCTED and facts.upfront_fee_minor > 0 and not (
        rules.fee_deduction_allowed
    ):
        problems.append(Problem(
            f"{rules.code}.fee_deduction",
            f"{rules.code} forbids deducting fees from the amount paid out (砍头息); "
            "finance the fee or charge it with the instalments",
            field="fee_mode", figures={"fee": format_amount(facts.upfront_fee_minor, cur)},
        ))
    cap_problem = _cap_problem(rules, facts)
    if cap_problem is not None:
        problems.append(cap_problem)
    return problems


def _term_problems(rules: Jurisdiction, facts: QuoteFacts) -> list[Problem]:
    if facts.type is LoanType.BULLET and facts.term_days > rules.bullet_term_max_days:
        return [Problem(
            f"{rules.code}.bullet_term",
            f"{rules.code} limits single-period loans to {rules.bullet_term_max_days} days; "
            f"{facts.term_days} days asked",
            field="term",
            figures={"term_days": str(facts.term_days), "max": str(rules.bullet_term_max_days)},
        )]
    if facts.term_days > rules.term_max_months * 31:
        return [Problem(
            f"{rules.code}.term",
            f"{rules.code} limits loan terms to {rules.term_max_months} months",
            field="term", figures={"term_days": str(facts.term_days)},
        )]
    return []


def _cap_problem(rules: Jurisdiction, facts: QuoteFacts) -> Problem | None:
    if rules.annual_cost_cap is None:
        return None
    measured = (
        facts.annual_rate_compound if rules.cap_measure == "compound"
        else facts.annual_rate_disclosed
    )
    if measured <= rules.annual_cost_cap:
        return None
    return Problem(
        f"{rules.code}.annual_cost_cap",
        f"{rules.code} caps the annualised comprehensive cost at "
        f"{format_rate(rules.annual_cost_cap * 100, 2)}%; this loan costs "
        f"{format_rate(measured * 100, 2)}% ({rules.cap_measure}, IRR method, all fees included)",
        field="annual_rate",
        figures={
            "cap": format_rate(rules.annual_cost_cap),
            "annual_rate": format_rate(measured),
            "measure": rules.cap_measure,
        },
    )
