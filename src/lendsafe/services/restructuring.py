"""Restructuring use cases: preview, submit (maker-checker where policy says so), apply
atomically, and borrowers' "I need help paying" requests.

Applying a change is one transaction: the old schedule is copied to ``schedule_versions``,
the new state is saved with its servicing columns (so set-based close of business runs on
the new schedule), the journal gets the change's transfers, a credit-reporting flag is
written, and a ``Change(action="loan.restructure")`` is published to the listeners
(reminders, audit, ledger sealer) inside the same transaction.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import asdict
from datetime import date
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, insert, select, update

import lendsafe.domain.ledger.restructure_posting  # noqa: F401  (registers posting rules)
from lendsafe.adapters.db import restructure_tables as rt
from lendsafe.adapters.db import tables as t
from lendsafe.adapters.db.repository import (
    LoanRecord,
    append_journal,
    load_loan,
    rules_id,
    save_state,
)
from lendsafe.domain.calendar import Frequency, day_number
from lendsafe.domain.lending.loan import LoanState
from lendsafe.domain.lending.restructure import (
    ChangeHistory,
    ChangeKind,
    ChangeRequest,
    Disclosure,
    HolidayInterest,
    Restructured,
    RestructuringPolicy,
    load_policy,
    restructure,
)
from lendsafe.domain.money import currency, format_amount, format_rate, parse_amount
from lendsafe.domain.problems import Problem, Refused
from lendsafe.services.lending import Change, LendingService

ACTION_KIND = "loan.restructure"
APPROVAL_PERMISSION = "approve.loan.restructure"


def load_restructuring_policy(path: Path | None = None) -> RestructuringPolicy:
    """The restructuring policy (the packaged ``restructuring.toml`` by default)."""
    if path is None:
        text = resources.files("lendsafe.data").joinpath("restructuring.toml").read_text("utf-8")
    else:
        text = path.read_text("utf-8")
    return load_policy(tomllib.loads(text))


def parse_request(document: Mapping[str, Any], currency_code: str) -> ChangeRequest:
    """A change request from strings (CLI options, API bodies); bad input is refused."""
    cur = currency(currency_code)
    try:
        kind = ChangeKind(str(document.get("kind")))
    except ValueError:
        known = ", ".join(k.value for k in ChangeKind)
        raise Refused([Problem("restructure.kind", f"unknown kind {document.get('kind')!r}; "
                               f"kinds: {known}", field="kind")]) from None
    try:
        return ChangeRequest(
            kind=kind, count=int(document.get("count") or 0),
            days=int(document.get("days") or 0),
            fee_minor=parse_amount(str(document.get("fee") or "0"), cur),
            amount_minor=None if not document.get("amount") else parse_amount(
                str(document["amount"]), cur),
            annual_rate=None if document.get("annual_rate") in (None, "") else Decimal(
                str(document["annual_rate"])),
            first_due=None if not document.get("first_due") else date.fromisoformat(
                str(document["first_due"])),
            frequency=None if not document.get("frequency") else Frequency(
                str(document["frequency"])),
            holiday_interest=None if not document.get("holiday_interest") else HolidayInterest(
                str(document["holiday_interest"])),
        )
    except (ValueError, InvalidOperation) as error:
        raise Refused([Problem("restructure.request", f"bad change request: {error}")]) from None


def request_document(request: ChangeRequest) -> dict[str, Any]:
    """The JSON form of a request (minor units and ISO dates)."""
    return {k: (v.value if hasattr(v, "value") else str(v) if isinstance(v, Decimal | date)
                else v) for k, v in asdict(request).items() if v not in (None, 0)}


def request_from_stored(document: Mapping[str, Any]) -> ChangeRequest:
    """Inverse of :func:`request_document`."""
    return ChangeRequest(
        kind=ChangeKind(document["kind"]), count=int(document.get("count", 0)),
        days=int(document.get("days", 0)), fee_minor=int(document.get("fee_minor", 0)),
        amount_minor=document.get("amount_minor"),
        annual_rate=None if "annual_rate" not in document else Decimal(document["annual_rate"]),
        first_due=None if "first_due" not in document else date.fromisoformat(
            document["first_due"]),
        frequency=None if "frequency" not in document else Frequency(document["frequency"]),
        holiday_interest=None if "holiday_interest" not in document else HolidayInterest(
            document["holiday_interest"]),
    )


def schedule_document(state: LoanState, code: str) -> list[dict[str, Any]]:
    """Instalments as JSON (money as major-unit strings)."""
    cur = currency(code)
    return [{"seq": r.seq, "due_date": r.due_date.isoformat(),
             "principal": format_amount(r.principal_due, cur),
             "interest": format_amount(r.interest_due, cur),
             "fees": format_amount(r.fee_due, cur),
             "total": format_amount(r.principal_due + r.interest_due + r.fee_due, cur),
             "paid": format_amount(r.principal_paid + r.interest_paid + r.fee_paid, cur)}
            for r in state.installments]


def _side(state: LoanState, disclosure: Disclosure, code: str) -> dict[str, Any]:
    cur = currency(code)
    return {"schedule": schedule_document(state, code),
            "principal_outstanding": format_amount(state.principal_outstanding, cur),
            "annual_rate_disclosed": format_rate(disclosure.annual_rate_disclosed, 6),
            "total_repayable": format_amount(disclosure.total_repayable_minor, cur),
            "total_cost": format_amount(disclosure.total_cost_minor, cur),
            "maturity_date": None if disclosure.maturity_date is None
            else disclosure.maturity_date.isoformat(),
            "days_past_due": state.days_past_due, "bucket": state.bucket}


def change_document(result: Restructured, code: str) -> dict[str, Any]:
    """A computed change: old and new schedule, disclosures, approval, events."""
    return {
        "loan_id": result.before.loan_id, "kind": result.request.kind.value,
        "on": result.on.isoformat(), "request": request_document(result.request),
        "needs_approval": result.needs_approval, "credit_flag": result.credit_flag,
        "before": _side(result.before, result.disclosure_before, code),
        "after": _side(result.after, result.disclosure_after, code),
        "events": [{"event": type(e).__name__, **{k: v for k, v in vars(e).items()
                                                  if k not in ("loan_id", "on")}}
                   for e in result.events],
    }


class RestructuringService:
    """Preview, submit and apply changes to live loans; hardship requests."""

    def __init__(self, lending: LendingService, policy: RestructuringPolicy | None = None,
                 security: Any = None) -> None:
        self.lending = lending
        self.engine = lending.engine
        self.policy = policy or load_restructuring_policy()
        self.security = security
        if security is not None and ACTION_KIND not in security.actions:
            security.register_sensitive_action(ACTION_KIND, self._apply_action,
                                               APPROVAL_PERMISSION, self._describe_action)

    # -- computing ---------------------------------------------------------------------
    def history(self, connection: Connection, loan_id: int) -> ChangeHistory:
        """Changes applied to a loan so far."""
        rows = connection.execute(select(rt.restructures.c.kind, rt.restructures.c.business_day)
                                  .where(rt.restructures.c.loan_id == loan_id,
                                         rt.restructures.c.status == "applied")).all()
        from lendsafe.domain.calendar import from_day_number

        return ChangeHistory(tuple((ChangeKind(k), from_day_number(d)) for k, d in rows))

    def compute(self, connection: Connection, loan_id: int, request: ChangeRequest,
                lock: bool = False) -> tuple[LoanRecord, Restructured]:
        """Load the loan and compute the change on the open business date."""
        record = load_loan(connection, loan_id, for_update=lock)
        on = self.lending.open_date(connection)
        catalogue = self.lending.catalogue
        rules = catalogue.jurisdictions[catalogue.product(record.product_id).jurisdiction]
        cap = None if rules.annual_cost_cap is None else (rules.code, rules.annual_cost_cap)
        result = restructure(record.state, request, self.policy,
                             self.history(connection, loan_id), on, cap)
        return record, result

    def preview(self, loan_id: int, request: ChangeRequest) -> dict[str, Any]:
        """What the change would do (nothing is written)."""
        with self.engine.connect() as connection:
            record, result = self.compute(connection, loan_id, request)
        return change_document(result, record.currency)

    # -- submitting and applying -----------------------------------------------------
    def submit(self, loan_id: int, request: ChangeRequest, actor: str, reason: str = "",
               principal: Any = None) -> dict[str, Any]:
        """Apply now, or (when policy wants approval) propose it to a checker."""
        with self.engine.begin() as connection:
            record, result = self.compute(connection, loan_id, request, lock=True)
            if not result.needs_approval:
                return self.apply(connection, record, result, actor)
        if self.security is None or principal is None:
            raise Refused([Problem("restructure.approval", f"{request.kind.value} needs "
                                   "maker-checker approval; submit it as a signed-in staff "
                                   "user (control services)", field="kind")])
        action = self.security.propose(principal, ACTION_KIND, f"loan:{loan_id}",
                                       request_document(request), reason or "restructure")
        return {"status": "pending_approval", "action": action,
                "preview": change_document(result, record.currency)}

    def apply(self, connection: Connection, record: LoanRecord, result: Restructured,
              actor: str, checker: str | None = None,
              action_id: int | None = None) -> dict[str, Any]:
        """Write the change in the caller's transaction (see the module docstring)."""
        before, after, on = result.before, result.after, result.on
        restructure_id = self._record(connection, result, actor, checker, action_id,
                                      record.currency)
        reference = f"restructure:{restructure_id}"
        self._keep_history(connection, before, reference, on)
        save_state(connection, after, was=before)
        self._loan_facts(connection, after)
        append_journal(connection, result.events, reference=reference)
        if result.credit_flag != "none":
            connection.execute(insert(rt.credit_flags).values(
                loan_id=before.loan_id, flag=result.credit_flag, from_day=day_number(on),
                until_day=None, suppress_negative=0, source=reference))
        self.lending.publish(Change(connection, "loan.restructure", actor, on,
                                    tuple(result.events), reference))
        return {"status": "applied", "restructure_id": restructure_id,
                **change_document(result, record.currency)}

    def _record(self, connection: Connection, result: Restructured, actor: str,
                checker: str | None, action_id: int | None, code: str) -> int:
        row = connection.execute(insert(rt.restructures).values(
            loan_id=result.before.loan_id, kind=result.request.kind.value,
            request=json.dumps(request_document(result.request), sort_keys=True),
            status="applied", business_day=day_number(result.on), maker=actor,
            checker=checker, action_id=action_id,
            annual_rate_before=format_rate(result.disclosure_before.annual_rate_disclosed, 6),
            annual_rate_after=format_rate(result.disclosure_after.annual_rate_disclosed, 6),
            preview=json.dumps(change_document(result, code), sort_keys=True, default=str),
            created_micros=_micros(self.lending)))
        return int(row.inserted_primary_key[0])  # type: ignore[index]

    @staticmethod
    def _keep_history(connection: Connection, state: LoanState, reference: str,
                      on: date) -> None:
        connection.execute(insert(rt.schedule_versions), [
            {"loan_id": state.loan_id, "replaced_by": reference, "business_day": day_number(on),
             "seq": r.seq, "period_start": r.period_start, "due_date": r.due_date,
             "principal_due_minor": r.principal_due, "interest_due_minor": r.interest_due,
             "fee_due_minor": r.fee_due, "principal_paid_minor": r.principal_paid,
             "interest_paid_minor": r.interest_paid, "fee_paid_minor": r.fee_paid,
             "interest_recognized_minor": r.interest_recognized,
             "fee_recognized_minor": r.fee_recognized} for r in state.installments])

    @staticmethod
    def _loan_facts(connection: Connection, state: LoanState) -> None:
        """Rules (rate, shape), type and maturity follow the new schedule."""
        connection.execute(update(t.loans).where(t.loans.c.id == state.loan_id).values(
            rules_id=rules_id(connection, state.rules), type=state.rules.type.value,
            maturity_date=state.installments[-1].due_date))

    # -- maker-checker -------------------------------------------------------------------
    def _apply_action(self, connection: Connection, action: Any, checker: str) -> dict[str, Any]:
        loan_id = int(str(action.target).removeprefix("loan:"))
        request = request_from_stored(action.payload)
        record, result = self.compute(connection, loan_id, request, lock=True)
        document = self.apply(connection, record, result, action.maker, checker, action.id)
        return {"restructure_id": document["restructure_id"], "kind": document["kind"],
                "annual_rate_after": document["after"]["annual_rate_disclosed"]}

    def _describe_action(self, connection: Connection, action: Any) -> dict[str, Any]:
        loan_id = int(str(action.target).removeprefix("loan:"))
        try:
            record, result = self.compute(connection, loan_id,
                                          request_from_stored(action.payload))
        except Refused as refused:
            return {"refused": [p.as_dict() for p in refused.problems]}
        return change_document(result, record.currency)

    # -- hardship requests -----------------------------------------------------------
    def request_help(self, loan_id: int, borrower_id: int, reason: str,
                     actor: str) -> dict[str, Any]:
        """A borrower's "I need help paying" request, visible to staff."""
        if not reason.strip():
            raise Refused([Problem("hardship.reason", "say briefly what happened",
                                   field="reason")])
        with self.engine.begin() as connection:
            record = load_loan(connection, loan_id)
            if record.borrower_id != borrower_id:
                raise LookupError("loan not found")
            on = self.lending.open_date(connection)
            request_id = int(connection.execute(insert(rt.hardship_requests).values(
                loan_id=loan_id, borrower_id=borrower_id, reason=reason[:2000], status="open",
                business_day=day_number(on), created_micros=_micros(self.lending),
            )).inserted_primary_key[0])  # type: ignore[index]
            self.lending.publish(Change(connection, "loan.hardship_request", actor, on, (),
                                        f"hardship:{request_id}"))
        return {"hardship_request_id": request_id, "loan_id": loan_id, "status": "open",
                "business_date": on.isoformat()}

    def hardship_requests(self, status: str | None = "open") -> list[dict[str, Any]]:
        """Hardship requests for staff (open ones by default), oldest first."""
        query = select(rt.hardship_requests).order_by(rt.hardship_requests.c.id)
        if status:
            query = query.where(rt.hardship_requests.c.status == status)
        with self.engine.connect() as connection:
            rows = connection.execute(query.limit(1000)).all()
        return [{"id": r.id, "loan_id": r.loan_id, "borrower_id": r.borrower_id,
                 "reason": r.reason, "status": r.status} for r in rows]


def _micros(lending: LendingService) -> int:
    from lendsafe.services.audit import micros

    return micros(lending.clock())
