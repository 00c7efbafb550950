"""The composition root: builds the engine, the catalogue and the services from settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from lendsafe.adapters.db.engine import make_engine, upgrade
from lendsafe.adapters.signing import TreeHeadSigner
from lendsafe.config import Settings
from lendsafe.services.audit import AuditLog
from lendsafe.services.catalogue import Catalogue
from lendsafe.services.ledger import Ledger
from lendsafe.services.lending import LendingService


@dataclass
class Container:
    """Everything an entry point needs."""

    settings: Settings
    engine: Engine
    catalogue: Catalogue
    lending: LendingService
    audit: AuditLog | None = None
    ledger: Ledger | None = None
    security: Any = None  # lendsafe.services.control.Security (users, approvals, PII)
    reminders: Any = None  # lendsafe.services.reminders.ReminderService
    decisions: Any = None  # lendsafe.services.decisions.DecisionService


def build(settings: Settings | None = None, *, migrate: bool = True) -> Container:
    """Wire the real adapters (the database from ``LENDSAFE_DATABASE_URL``)."""
    settings = settings or Settings.from_env()
    engine = make_engine(settings.database_url)
    if migrate:
        upgrade(engine)
    catalogue = Catalogue.load(settings.products_file)
    lending = LendingService(engine, catalogue, eod_chunk_size=settings.eod_chunk_size)
    container = Container(settings, engine, catalogue, lending)
    wire_reminders(container)
    wire_control(container)
    wire_decisions(container)
    return container


def wire_reminders(container: Container) -> None:
    """Plan, cancel and replace reminders in the transaction of each lending change."""
    from lendsafe.config import ReminderSettings
    from lendsafe.services.reminders import ReminderService

    container.reminders = ReminderService(container.engine, ReminderSettings.from_env(),
                                          clock=container.lending.clock)
    container.lending.subscribe(container.reminders.on_change)


def wire_control(container: Container) -> None:
    """Audit every change and seal the journal in its transaction (keep these listeners last)."""
    from lendsafe.services.control import build_security

    settings = container.settings
    container.audit = AuditLog(container.lending.clock)
    container.ledger = Ledger(container.engine, TreeHeadSigner.from_file(settings.ledger_key_file),
                              settings.tree_heads_dir, container.lending.clock, container.audit)
    container.security = build_security(container)
    container.lending.subscribe(container.audit.on_change)
    container.lending.subscribe(container.ledger.on_change)


def wire_decisions(container: Container) -> None:
    """Credit decisions; model promotion as a maker-checker action (after wire_control)."""
    from lendsafe.adapters.ml.registry import ModelRegistry, models_dir
    from lendsafe.services.decision_control import PROMOTE, PROMOTE_PERMISSION, promotion_handlers
    from lendsafe.services.decision_models import ModelBook
    from lendsafe.services.decisions import DecisionService, load_default_policy

    book = ModelBook(ModelRegistry(models_dir()))
    container.decisions = DecisionService(container.engine, container.catalogue,
                                          container.lending, load_default_policy(), book)
    if container.security is not None:
        apply, describe = promotion_handlers(book)
        container.security.register_sensitive_action(PROMOTE, apply, PROMOTE_PERMISSION, describe)
        from lendsafe.services import decision_override as override

        applied, described = override.handlers(container.lending.clock)
        container.security.register_sensitive_action(override.KIND, applied,
                                                     override.PERMISSION, described)
