"""The fast disclosed rate (float Newton + proof) is exactly the 40-digit reference's, or None.

Reference: ``price(terms).annual_rate_disclosed`` (Appendix J, 40-digit ``Decimal`` search).
Random instalment offers over every frequency, amounts from tiny to the product's maximum,
every term, contract rates from 0.1 % to 300 % a year, start dates across month ends and
holidays; the fast path must give the same ``Decimal`` (same digits, same exponent) whenever
it answers, and answer almost always.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lendsafe.domain.lending.product import Product, Term
from lendsafe.domain.lending.quote import price, terms_for_product
from lendsafe.domain.lending.schedule import build_schedule
from lendsafe.domain.origination.disclosure import _sign, disclosed_rate
from lendsafe.domain.origination.pricing import Pricing
from lendsafe.services.catalogue import Catalogue
from tests.random_offers import random_terms

CATALOGUE = Catalogue.load()
INSTALMENTS = sorted((p for p in CATALOGUE.products.values() if p.frequency is not None),
                     key=lambda p: p.id)


@st.composite
def offers(draw: st.DrawFn) -> tuple[Product, int, Term, date, Decimal]:
    product = draw(st.sampled_from(INSTALMENTS))
    amount = draw(st.integers(product.amount_min_minor, product.amount_max_minor))
    term = Term(draw(st.integers(product.term_min.count, product.term_max.count)),
                product.term_min.unit)
    start = date(2026, 1, 1) + timedelta(days=draw(st.integers(0, 1100)))
    rate = Decimal(draw(st.integers(1, 3000))) / 1000
    return product, amount, term, start, rate


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(offers())
def test_fast_disclosed_rate_is_the_reference_rate(offer: tuple[Product, int, Term, date,
                                                                 Decimal]) -> None:
    product, amount, term, start, rate = offer
    terms = terms_for_product(product, amount, term, start, CATALOGUE.calendar(product), rate)
    fast = disclosed_rate(terms, build_schedule(terms))
    if fast is not None:
        reference = price(terms).annual_rate_disclosed
        assert fast == reference and str(fast) == str(reference), (terms, fast, reference)


def test_the_fast_path_answers_almost_always() -> None:
    import random

    rng = random.Random(29)
    answered = 0
    for n in range(400):
        terms = random_terms(rng, CATALOGUE, INSTALMENTS, date(2026, 1, 30) + timedelta(days=n),
                             ["0", "0.02", "0.04", "0.05", "0.3"])
        fast = disclosed_rate(terms, build_schedule(terms))
        if fast is not None:
            answered += 1
            assert fast == price(terms).annual_rate_disclosed
    assert answered >= 0.97 * 400, answered


def test_pricing_discloses_the_reference_rate_for_many_offers() -> None:
    """Through ``Pricing`` (the schedule kept from the facts, single payments by the
    reference on that schedule, the cap checked with the fast rate when the integer bound
    fails) against ``Pricing(exact=True)``, over every product."""
    import random

    rng = random.Random(11)
    fast, exact = Pricing(), Pricing(exact=True)
    products = list(CATALOGUE.products.values())
    for n in range(300):
        product = rng.choice(products)
        rules = CATALOGUE.jurisdictions[product.jurisdiction]
        amount = rng.randrange(product.amount_min_minor, product.amount_max_minor + 1, 100)
        term = Term(rng.randint(product.term_min.count, product.term_max.count),
                    product.term_min.unit)
        rate = product.annual_rate + Decimal(rng.choice(["0", "0.02", "0.05", "0.09", "0.3"]))
        on = date(2026, 3, 2) + timedelta(days=n % 40)
        calendar = CATALOGUE.calendar(product)
        mine = fast.priced(product, amount, term, on, calendar, rate, rules)
        theirs = exact.priced(product, amount, term, on, calendar, rate, rules)
        assert mine == theirs
        if mine is not None and theirs is not None:
            assert fast.disclosed(mine) == exact.disclosed(theirs)
            assert str(fast.disclosed(mine)) == str(exact.disclosed(theirs))


def test_a_sign_too_close_to_call_is_refused() -> None:
    # N(0) = 1000 − 1000 = 0 exactly: no sign can be proven
    assert _sign([(1000, 1, 0.0)], 1, 1000, 0.0) == 0
    assert _sign([(1100, 1, 0.0)], 1, 1000, 0.05) == 1
    assert _sign([(1100, 1, 0.0)], 1, 1000, 0.2) == -1
