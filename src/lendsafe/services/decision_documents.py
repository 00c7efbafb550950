"""JSON form of a decision: money as major-unit strings, rates and PD as decimal strings."""

from __future__ import annotations

from datetime import date
from typing import Any

from lendsafe.domain.money import Currency, format_amount, format_rate
from lendsafe.domain.origination.decision import Alternative, Availability, Decision
from lendsafe.domain.origination.offers import Offer
from lendsafe.services.decision_input import ParsedApplication
from lendsafe.services.decision_models import ModelScore


def offer_document(offer: Offer, cur: Currency, disclose: bool = True) -> dict[str, Any]:
    """An offer: product, amount, term, contract and disclosed rates, first payment.

    The disclosed rate needs the full quote (an IRR search); ``disclose=False`` leaves it out
    for offers whose rate is not shown."""
    priced = offer.priced
    disclosed = offer.annual_rate_disclosed if disclose else None
    return {
        "product": offer.product, "amount": format_amount(offer.amount_minor, cur),
        "term": str(offer.term), "annual_rate_offered": format_rate(offer.annual_rate, 4),
        "annual_rate_disclosed": None if disclosed is None else format_rate(disclosed, 4),
        "installments": None if priced is None else priced.installments,
        "payment_monthly": None if priced is None
        else format_amount(int(priced.payment_monthly), cur),
    }


def alternative_document(alternative: Alternative | None, cur: Currency) -> dict[str, Any] | None:
    """The nearest passing alternative, or None."""
    if alternative is None:
        return None
    return {"kind": alternative.kind, **offer_document(alternative.offer, cur),
            "available_from": None if alternative.available_from is None
            else alternative.available_from.isoformat()}


def availability_document(item: Availability, cur: Currency) -> dict[str, Any]:
    """One product's availability for the applicant."""
    offer = offer_document(item.offer, cur, disclose=item.available)
    return {
        "product": item.product, "available": item.available,
        "limit": format_amount(item.limit_minor, cur), "term": offer["term"],
        "annual_rate_offered": offer["annual_rate_offered"] if item.available else None,
        "annual_rate_disclosed": offer["annual_rate_disclosed"] if item.available else None,
        "reasons": [r.as_dict() for r in item.reasons],
        "alternative": alternative_document(item.alternative, cur),
    }


def decision_document(decision: Decision, parsed: ParsedApplication, application_id: str,
                      used: ModelScore, on: date, policy_version: str) -> dict[str, Any]:
    """The answer to an application."""
    cur = parsed.request.currency
    offer = offer_document(decision.offer, cur)
    return {
        "application_id": application_id,
        "decision": decision.decision,
        "pd": f"{used.pd:.6f}",
        "score": round(used.score, 2),
        "currency": cur.code,
        "limit": format_amount(decision.limit_minor, cur),
        "annual_rate_offered": offer["annual_rate_offered"],
        "annual_rate_disclosed": offer["annual_rate_disclosed"],
        "requested": offer,
        "reasons": [r.as_dict() for r in decision.reasons],
        "model_reasons": [{"characteristic": c, "value": v} for c, v in used.reasons],
        "alternative": alternative_document(decision.alternative, cur),
        "products": [availability_document(a, cur) for a in decision.products],
        "model_version": used.model_id,
        "policy_version": policy_version,
        "business_date": on.isoformat(),
        "referral_id": None,
    }
