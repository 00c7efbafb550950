"""Shared fixtures: databases (SQLite always, PostgreSQL when a server is reachable)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from lendsafe.adapters.db.engine import make_engine, upgrade
from lendsafe.services.catalogue import Catalogue
from lendsafe.services.lending import LendingService

POSTGRES_URL = os.environ.get(
    "LENDSAFE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
_postgres_reason: list[str] = []


def postgres_available() -> bool:
    """True when the test PostgreSQL server answers (the reason is kept for skips)."""
    if _postgres_reason:
        return _postgres_reason[0] == ""
    try:
        engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
        _postgres_reason.append("")
    except Exception as error:  # any failure means: skip with the reason
        _postgres_reason.append(f"PostgreSQL not reachable at {POSTGRES_URL}: {error}")
    return _postgres_reason[0] == ""


def _postgres_database() -> Iterator[str]:
    if not postgres_available():
        if os.environ.get("LENDSAFE_REQUIRE_POSTGRES"):
            pytest.fail(_postgres_reason[0])
        pytest.skip(_postgres_reason[0] + " (set LENDSAFE_TEST_POSTGRES_URL to run these)")
    name = f"lendsafe_t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_URL).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'lendsafe.sqlite'}"
    else:
        yield from _postgres_database()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database (skipped with a message when there is no server)."""
    yield from _postgres_database()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A migrated engine on a fresh database."""
    engine = make_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    """The packaged product catalogue."""
    return Catalogue.load()


@pytest.fixture
def service(engine: Engine, catalogue: Catalogue) -> LendingService:
    """A lending service on a fresh database opened on 2026-03-02."""
    lending = LendingService(engine, catalogue, eod_chunk_size=7)
    lending.initialise(date(2026, 3, 2))
    return lending
