"""Seeding helpers for reminder outbox tests and benchmarks: many loans, fast, realistic.

A few template loans are booked through :class:`LendingService` (so schedules and rules are
real); they are then cloned in bulk (``executemany``) with new borrowers and ids, and each
borrower gets contact preferences from ``contact_for``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Engine, func, insert, select

from lendsafe.adapters.db import tables as t
from lendsafe.adapters.db.reminder_tables import reminder_addresses, reminder_contacts
from lendsafe.config import ReminderSettings
from lendsafe.domain.lending.product import parse_term
from lendsafe.services.lending import LendingService

#: Dispatch tests plan every step of their loans at once (a horizon of ten years), so the
#: workers have the whole cadence to send; planning over the real horizon is tested apart.
PLAN_ALL = ReminderSettings(horizon_days=3660)

ContactFor = Callable[[int], tuple[str, str, dict[str, str], str]]


def default_contact(k: int) -> tuple[str, str, dict[str, str], str]:
    """(zone, language, addresses, opt_outs) for borrower number ``k``."""
    addresses = [{"sms": f"+8613{k:09d}", "app_push": f"tok-{k}"}, {"email": f"b{k}@x.cn"},
                 {"app_push": f"tok-{k}", "sms": f"+8613{k:09d}", "email": f"b{k}@x.cn"}]
    return "Asia/Shanghai", ("zh", "en")[k % 2], addresses[k % 3], ""


def seed_loans(engine: Engine, lending: LendingService, product: str, terms: Sequence[str],
               count: int, *, contact_for: ContactFor = default_contact,
               amount_minor: int = 100_000, chunk: int = 5_000) -> list[int]:
    """Book one template loan per term, then clone to ``count`` loans; returns loan ids."""
    templates = [_template(engine, lending.book(f"tpl-{i}", product, amount_minor,
                                                parse_term(term))) for i, term in enumerate(terms)]
    with engine.begin() as connection:
        next_loan = int(connection.execute(select(func.max(t.loans.c.id))).scalar() or 0) + 1
        next_borrower = int(connection.execute(
            select(func.max(t.borrowers.c.id))).scalar() or 0) + 1
    ids: list[int] = []
    for start in range(0, count, chunk):
        size = min(chunk, count - start)
        with engine.begin() as connection:
            ids += _clone(connection, templates, start, size, next_loan + start,
                          next_borrower + start, contact_for)
    return ids


def _template(engine: Engine, loan_id: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    with engine.connect() as connection:
        loan = dict(connection.execute(select(t.loans).where(t.loans.c.id == loan_id))
                    .one()._mapping)
        rows = [dict(r._mapping) for r in connection.execute(
            select(t.installments).where(t.installments.c.loan_id == loan_id))]
    return loan, rows


def _clone(connection: Any, templates: Sequence[tuple[dict[str, Any], list[dict[str, Any]]]],
           start: int, size: int, first_loan: int, first_borrower: int,
           contact_for: ContactFor) -> list[int]:
    borrowers, loans, installments, contacts, addresses = [], [], [], [], []
    created = templates[0][0]["disbursed_on"]
    for j in range(size):
        k, loan_id, borrower_id = start + j, first_loan + j, first_borrower + j
        loan, rows = templates[k % len(templates)]
        borrowers.append({"id": borrower_id, "external_ref": f"S{k}", "region": None,
                          "created_at": _at(created)})
        loans.append({**loan, "id": loan_id, "borrower_id": borrower_id})
        installments += [{**r, "loan_id": loan_id} for r in rows]
        zone, language, channel_addresses, opt_outs = contact_for(k)
        contacts.append({"borrower_id": borrower_id, "time_zone": zone, "language": language,
                         "quiet_hours": None, "opt_outs": opt_outs, "updated_at": _at(created)})
        addresses += [{"borrower_id": borrower_id, "channel": c, "address_sealed": a,
                       "key_id": "plain"} for c, a in channel_addresses.items()]
    for table, values in ((t.borrowers, borrowers), (t.loans, loans),
                          (t.installments, installments), (reminder_contacts, contacts),
                          (reminder_addresses, addresses)):
        if values:
            connection.execute(insert(table), values)
    return [row["id"] for row in loans]


def _at(day: Any) -> Any:
    from datetime import UTC, datetime, time

    return datetime.combine(day, time(0), tzinfo=UTC)
