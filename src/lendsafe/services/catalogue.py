"""The product catalogue, jurisdictions and delinquency buckets, loaded from data files."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from lendsafe.adapters.calendars import business_calendar
from lendsafe.domain.calendar import BusinessCalendar
from lendsafe.domain.lending.delinquency import DEFAULT_BUCKETS, Bucket, load_buckets
from lendsafe.domain.lending.jurisdiction import Jurisdiction, load_jurisdictions
from lendsafe.domain.lending.loan import PENALTY_RATE_SCALE, ServicingRules
from lendsafe.domain.lending.product import Product, load_products
from lendsafe.domain.problems import Problem, Refused


def _read_toml(path: Path | None, default_name: str) -> dict[str, Any]:
    if path is None:
        text = resources.files("lendsafe.data").joinpath(default_name).read_text("utf-8")
    else:
        text = path.read_text("utf-8")
    return tomllib.loads(text)


@dataclass(frozen=True)
class Catalogue:
    """Products, jurisdictions and delinquency buckets in force."""

    products: dict[str, Product]
    jurisdictions: dict[str, Jurisdiction]
    buckets: tuple[Bucket, ...]

    @classmethod
    def load(cls, products_file: Path | None = None) -> Catalogue:
        """Load and validate the catalogue (the packaged default unless a file is given)."""
        raw = _read_toml(products_file, "products.toml")
        jurisdictions = load_jurisdictions(_read_toml(None, "jurisdictions.toml"))
        products = load_products(raw)
        buckets = load_buckets(raw.get("delinquency", {}).get("buckets", [])) if (
            "delinquency" in raw
        ) else DEFAULT_BUCKETS
        unknown = [p for p in products.values() if p.jurisdiction not in jurisdictions]
        if unknown:
            raise Refused([
                Problem("product.jurisdiction", f"product {p.id!r} names unknown jurisdiction "
                        f"{p.jurisdiction!r}; known: {', '.join(sorted(jurisdictions))}")
                for p in unknown
            ])
        return cls(products, jurisdictions, buckets)

    def product(self, product_id: str) -> Product:
        """A product by id, or a refusal listing the ids that exist."""
        try:
            return self.products[product_id]
        except KeyError:
            known = ", ".join(sorted(self.products))
            raise Refused([Problem("product.unknown", f"unknown product {product_id!r}; "
                                   f"products: {known}", field="product")]) from None

    def calendar(self, product: Product) -> BusinessCalendar:
        """The business calendar a product rolls its due dates on."""
        return business_calendar(product.calendar)

    def servicing_rules(self, product: Product) -> ServicingRules:
        """The rules a loan of ``product`` keeps for life."""
        return ServicingRules(
            type=product.type,
            annual_rate=product.annual_rate,
            day_count=product.day_count,
            rounding=product.rounding,
            frequency=product.frequency,
            periodic_fee_minor=product.periodic_fee_minor,
            penalty_rate_ppm=int(product.penalty_annual_rate * PENALTY_RATE_SCALE),
            grace_days=product.grace_days,
            charge_off_days=product.charge_off_days,
            prepayment=product.prepayment,
            allocation=product.allocation,
            buckets=self.buckets,
        )
