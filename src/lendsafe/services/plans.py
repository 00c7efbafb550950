"""Personalised repayment plans at origination (see ``lendsafe.domain.lending.affordability``).

Every term alternative of every catalogue product in the borrower's currency (or of one
product) is priced with ``checked_quote`` (the jurisdiction's rules and the disclosed
annualised rate by IRR); the plans whose monthly burden fits the affordability rule are
returned ranked, and when none fits the answer says why.
"""

from __future__ import annotations

import tomllib
from collections import Counter
from datetime import date
from importlib import resources
from typing import Any

from lendsafe.domain.lending.affordability import (
    RANKING_RULE,
    AffordabilityRule,
    Plan,
    affordability_problems,
    load_rule,
    monthly_payment,
    rank,
    term_alternatives,
)
from lendsafe.domain.lending.quote import checked_quote, terms_for_product
from lendsafe.domain.money import Currency, currency, format_amount, format_rate
from lendsafe.domain.problems import Problem, Refused
from lendsafe.services.catalogue import Catalogue


def affordability_rule(cur: Currency) -> AffordabilityRule:
    """The packaged affordability rule."""
    text = resources.files("lendsafe.data").joinpath("affordability.toml").read_text("utf-8")
    return load_rule(tomllib.loads(text), cur)


def _rule_document(rule: AffordabilityRule, cur: Currency) -> dict[str, Any]:
    return {"payment_to_income_max": str(rule.payment_to_income_max),
            "debt_service_max": str(rule.debt_service_max),
            "income_min": format_amount(rule.income_min_minor, cur),
            "monthly_payment": "largest instalment x periods a year / 12, rounded up; a "
                               "single-period loan's whole repayment in one month",
            "ranking": RANKING_RULE, "source": rule.source}


def _plan_document(plan: Plan, cur: Currency) -> dict[str, Any]:
    schedule = plan.quote.schedule
    return {"product": plan.product_id, "term": str(plan.term),
            "frequency": None if plan.quote.terms.frequency is None
            else plan.quote.terms.frequency.value,
            "installments": len(schedule.installments),
            "installment_max": format_amount(plan.installment_max_minor, cur),
            "monthly_payment": format_amount(plan.monthly_payment_minor, cur),
            "annual_rate_disclosed": format_rate(plan.quote.annual_rate_disclosed, 4),
            "total_cost": format_amount(schedule.total_cost_minor, cur),
            "total_repayable": format_amount(schedule.total_repayable_minor, cur),
            "maturity_date": schedule.maturity_date.isoformat()}


def offer_plans(catalogue: Catalogue, income_minor: int, obligations_minor: int,
                amount_minor: int, start: date, currency_code: str = "CNY",
                product_id: str | None = None) -> dict[str, Any]:
    """Affordable plans, ranked; ``{"plans": [], "reason": …}`` when none fits."""
    cur = currency(currency_code)
    rule = affordability_rule(cur)
    if income_minor <= 0 or obligations_minor < 0 or amount_minor <= 0:
        raise Refused([Problem("plans.input", "income and amount must be positive and "
                               "obligations not negative", field="income")])
    products = [catalogue.product(product_id)] if product_id else [
        p for p in catalogue.products.values() if p.currency.code == cur.code]
    plans, misses = [], Counter[str]()
    if income_minor < rule.income_min_minor:
        misses["affordability.income_min"] += 1
        products = []
    for product in products:
        for term in term_alternatives(product, rule):
            try:
                terms = terms_for_product(product, amount_minor, term, start,
                                          catalogue.calendar(product))
                quote = checked_quote(terms, catalogue.jurisdictions[product.jurisdiction])
            except Refused as refused:
                misses.update(p.code for p in refused.problems)
                continue
            largest, monthly = monthly_payment(quote)
            problems = affordability_problems(rule, income_minor, obligations_minor, monthly)
            misses.update(p.code for p in problems)
            if not problems:
                plans.append(Plan(product.id, term, quote, largest, monthly))
    document: dict[str, Any] = {
        "plans": [_plan_document(p, cur) for p in rank(plans)],
        "rule": _rule_document(rule, cur), "currency": cur.code,
        "income": format_amount(income_minor, cur),
        "obligations": format_amount(obligations_minor, cur),
        "amount": format_amount(amount_minor, cur), "start": start.isoformat()}
    if not plans:
        document["reason"] = _reason(misses, products == [])
        document["refusals"] = dict(misses)
    return document


def _reason(misses: Counter[str], no_products: bool) -> str:
    if misses.get("affordability.income_min"):
        return "the monthly income is below the minimum of the affordability rule"
    if no_products:
        return "no product is offered in this currency"
    if not misses:
        return "no product offers a term for this amount"
    code, _ = misses.most_common(1)[0]
    return {"affordability.payment_to_income": "every plan's payment exceeds the share of "
            "income the rule allows; ask for less or a longer term",
            "affordability.debt_service": "existing obligations leave no room for a payment "
            "within the debt-service limit"}.get(
        code, f"no plan passes the product and legal rules (most often: {code})")
