"""Jurisdiction rules in force: the data file seeds the database, an approved
``jurisdiction.change`` (maker-checker) changes the stored copy, and every booking reads
the stored copy - so a cap lowered by the regulator is enforced by every process at once.

Loans already booked keep the rules they were booked under (their quote was checked then).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, event, insert, select, update

from lendsafe.adapters.db import tables as t
from lendsafe.domain.lending.jurisdiction import (
    Jurisdiction,
    jurisdiction_definition,
    load_jurisdictions,
)
from lendsafe.domain.problems import Problem, Refused
from lendsafe.services.catalogue import Catalogue

KIND = "jurisdiction.change"
PERMISSION = "approve.jurisdiction.change"


def register(connection: Connection, catalogue: Catalogue, now: datetime,
             texts: dict[str, str]) -> None:
    """Store every jurisdiction of the data file not stored yet; read the stored ones."""
    known = set(connection.execute(select(t.jurisdictions.c.code)).scalars())
    for code, rules in catalogue.jurisdictions.items():
        if code not in known:
            connection.execute(insert(t.jurisdictions).values(
                code=code, definition=json.dumps(jurisdiction_definition(rules),
                                                 sort_keys=True), created_at=now))
    refresh(connection, catalogue, texts)


def refresh(connection: Connection, catalogue: Catalogue, texts: dict[str, str],
            code: str | None = None) -> Jurisdiction | None:
    """The jurisdiction ``code`` in force (every stored one when None) put into this
    process's catalogue. ``texts`` is the caller's memo of the stored text each held rule
    came from: rules whose text did not change stay the same objects (so caches keyed on
    them, such as the decisions' pricing, hold) and are not parsed again."""
    query = select(t.jurisdictions.c.code, t.jurisdictions.c.definition)
    if code is not None:
        query = query.where(t.jurisdictions.c.code == code)
    for stored_code, text in connection.execute(query).all():
        if texts.get(stored_code) != text:
            catalogue.jurisdictions[stored_code] = load_jurisdictions(
                {"jurisdiction": [json.loads(text)]})[stored_code]
            texts[stored_code] = text
    return None if code is None else catalogue.jurisdictions.get(code)


def change(connection: Connection, catalogue: Catalogue, code: str, changes: dict[str, Any],
           publish: Callable[[], None], texts: dict[str, str]) -> dict[str, Any]:
    """Validate and store a changed jurisdiction in the caller's transaction (the approval's);
    ``publish`` announces it (audit, ledger); this process's catalogue follows on commit."""
    text = connection.execute(select(t.jurisdictions.c.definition).where(
        t.jurisdictions.c.code == code).with_for_update()).scalar()
    if text is None:
        raise LookupError(f"jurisdiction {code!r} does not exist")
    before = json.loads(text)
    problems = []
    if not changes:
        problems.append(Problem("jurisdiction.changes_empty", "a jurisdiction change names at "
                                "least one rule to change", field="changes"))
    if changes.get("code", code) != code:
        problems.append(Problem("jurisdiction.code_fixed", "a jurisdiction's code cannot "
                                "change", field="changes"))
    known = set(before) | {"annual_cost_cap"}
    unknown = sorted(set(changes) - known)
    if unknown:
        problems.append(Problem("jurisdiction.field_unknown", f"unknown rules {unknown}; "
                                f"known: {', '.join(sorted(known))}", field="changes"))
    if problems:
        raise Refused(problems)
    rules = _validated({**before, **changes})
    after = jurisdiction_definition(rules)
    stored = json.dumps(after, sort_keys=True)
    connection.execute(update(t.jurisdictions).where(t.jurisdictions.c.code == code).values(
        definition=stored))
    document = {"jurisdiction": code, "before": before, "after": after}
    publish()

    def committed(_connection: Connection) -> None:
        catalogue.jurisdictions[code] = rules
        texts[code] = stored

    event.listen(connection, "commit", committed, once=True)
    return document


def _validated(raw: dict[str, Any]) -> Jurisdiction:
    try:
        rules = load_jurisdictions({"jurisdiction": [raw]})[str(raw["code"])]
    except (KeyError, ValueError, ArithmeticError) as error:
        raise Refused([Problem("jurisdiction.invalid", f"the changed rules are invalid: "
                               f"{error}", field="changes")]) from None
    cap = rules.annual_cost_cap
    if cap is not None and not 0 < cap < 10:
        raise Refused([Problem("jurisdiction.invalid", f"annual_cost_cap {cap} must be a "
                               "rate between 0 and 10 (e.g. 0.24)", field="changes")])
    if not 0 < rules.amount_min_minor <= rules.amount_max_minor:
        raise Refused([Problem("jurisdiction.invalid", "need 0 < amount_min <= amount_max",
                               field="changes")])
    return rules
