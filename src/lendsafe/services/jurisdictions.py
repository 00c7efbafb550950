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


def register(connection: Connection, catalogue: Catalogue, now: datetime) -> None:
    """Store every jurisdiction of the data file not stored yet; read the stored ones."""
    known = set(connection.execute(select(t.jurisdictions.c.code)).scalars())
    for code, rules in catalogue.jurisdictions.items():
        if code not in known:
            connection.execute(insert(t.jurisdictions).values(
                code=code, definition=json.dumps(jurisdiction_definition(rules),
                                                 sort_keys=True), created_at=now))
    for code in sorted(known):
        refresh(connection, catalogue, code)


def refresh(connection: Connection, catalogue: Catalogue, code: str) -> Jurisdiction | None:
    """The jurisdiction in force (the stored copy), put into this process's catalogue."""
    text = connection.execute(select(t.jurisdictions.c.definition).where(
        t.jurisdictions.c.code == code)).scalar()
    if text is None:
        return catalogue.jurisdictions.get(code)
    rules = load_jurisdictions({"jurisdiction": [json.loads(text)]})[code]
    catalogue.jurisdictions[code] = rules
    return rules


def refresh_all(connection: Connection, catalogue: Catalogue, texts: dict[str, str]) -> None:
    """Every stored jurisdiction put into this process's catalogue when its stored text is
    not the one ``texts`` (the caller's memo) says the catalogue holds; unchanged rules stay
    the same objects."""
    for code, text in connection.execute(select(t.jurisdictions.c.code,
                                                t.jurisdictions.c.definition)).all():
        if texts.get(code) != text:
            catalogue.jurisdictions[code] = load_jurisdictions(
                {"jurisdiction": [json.loads(text)]})[code]
            texts[code] = text


def change(connection: Connection, catalogue: Catalogue, code: str, changes: dict[str, Any],
           publish: Callable[[], None]) -> dict[str, Any]:
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
    connection.execute(update(t.jurisdictions).where(t.jurisdictions.c.code == code).values(
        definition=json.dumps(after, sort_keys=True)))
    document = {"jurisdiction": code, "before": before, "after": after}
    publish()
    event.listen(connection, "commit",
                 lambda _c: catalogue.jurisdictions.__setitem__(code, rules), once=True)
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
