"""Random offers of a catalogue's products, for the pricing tests (seeded, reproducible)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import date
from decimal import Decimal

from lendsafe.domain.lending.product import Product, Term
from lendsafe.domain.lending.quote import terms_for_product
from lendsafe.domain.lending.schedule import LoanTerms
from lendsafe.services.catalogue import Catalogue


def random_terms(rng: random.Random, catalogue: Catalogue, products: Sequence[Product],
                 start: date, extra_rates: Sequence[str]) -> LoanTerms:
    """Terms of one of ``products``: any amount on its 1.00 grid, any term it lends, its
    rate plus one of ``extra_rates``, starting on ``start``."""
    product = rng.choice(list(products))
    amount = rng.randrange(product.amount_min_minor, product.amount_max_minor + 1, 100)
    term = Term(rng.randint(product.term_min.count, product.term_max.count),
                product.term_min.unit)
    rate = product.annual_rate + Decimal(rng.choice(list(extra_rates)))
    return terms_for_product(product, amount, term, start, catalogue.calendar(product), rate)
