"""The composition root: builds the engine, the catalogue and the services from settings."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from lendsafe.adapters.db.engine import make_engine, upgrade
from lendsafe.config import Settings
from lendsafe.services.catalogue import Catalogue
from lendsafe.services.lending import LendingService


@dataclass
class Container:
    """Everything an entry point needs."""

    settings: Settings
    engine: Engine
    catalogue: Catalogue
    lending: LendingService


def build(settings: Settings | None = None, *, migrate: bool = True) -> Container:
    """Wire the real adapters (the database from ``LENDSAFE_DATABASE_URL``)."""
    settings = settings or Settings.from_env()
    engine = make_engine(settings.database_url)
    if migrate:
        upgrade(engine)
    catalogue = Catalogue.load(settings.products_file)
    lending = LendingService(engine, catalogue, eod_chunk_size=settings.eod_chunk_size)
    return Container(settings, engine, catalogue, lending)
