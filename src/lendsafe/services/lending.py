"""Lending use cases: quote, book, pay, reverse a payment, write off, payoff, close of
business, product changes, status and views.

Each use case runs in one database transaction (the unit of work): the state change, its
journal transfers and its records commit together or not at all. Use cases that a
maker-checker approval applies (payment reversal, write-off, product change) also run in
the approval's transaction when given its connection.

Products: the catalogue file seeds the database (``initialise`` stores each product's
whole definition); from then on the database copy is the product in force, changed only by
an approved ``product.change`` (:meth:`LendingService.change_product`). Booking reads the
stored definition in its own transaction, so every process books with the product in
force; editing the file later does not change a product already registered.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, event, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from lendsafe.adapters.db import decision_tables as dt
from lendsafe.adapters.db import tables as t
from lendsafe.adapters.db.eod import close_business_day
from lendsafe.adapters.db.repository import (
    REVERSAL_PREFIX,
    WRITE_OFF_PREFIX,
    LoanHistory,
    LoanRecord,
    NotFound,
    append_journal,
    installment_rows,
    journal_entry_count,
    load_loan,
    loan_history,
    rules_id,
    save_state,
    servicing_columns,
    trial_balance_by_currency,
)
from lendsafe.domain import events as ev
from lendsafe.domain.calendar import Rolling, day_number
from lendsafe.domain.lending.loan import (
    LoanState,
    LoanStatus,
    ServicingError,
    close_day,
    open_loan,
    write_off,
)
from lendsafe.domain.lending.payments import (
    Allocation,
    PaymentReversed,
    apply_payment,
    payoff_amount,
    replay,
)
from lendsafe.domain.lending.product import (
    FeeMode,
    LoanType,
    Product,
    RateBasis,
    Term,
    product_definition,
    product_from_mapping,
)
from lendsafe.domain.lending.quote import Quote, checked_quote, terms_for_product
from lendsafe.domain.money import currency, format_amount, format_rate
from lendsafe.domain.problems import Problem, Refused
from lendsafe.services import jurisdictions, reversal
from lendsafe.services.catalogue import Catalogue
from lendsafe.services.reversal import ReversalPlan, reversal_document

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Change:
    """What a committed-together use case did, for listeners in the same transaction.

    ``events`` are the domain events (loan events, or one ``BusinessDayClosed``); listeners
    (the reminder planner, the audit log, the ledger sealer) write their own records on
    ``connection`` so that they commit or roll back with the change itself.
    """

    connection: Connection
    action: str  # "loan.book", "loan.pay", "eod.close", ...
    actor: str
    business_date: date
    events: tuple[object, ...]
    target: str | None = None
    schedule_changed: bool = True  # False when the loan's due dates are as they were


Listener = Callable[[Change], None]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Conflict(ValueError):
    """A request that clashes with an earlier one (e.g. an idempotency key reused)."""


@dataclass(frozen=True)
class EodSummary:
    """What close of business did for one date."""

    business_date: date
    loans: int
    journal_entries: int


class LendingService:
    """Use cases over one database."""

    def __init__(self, engine: Engine, catalogue: Catalogue, clock: Clock = _utc_now,
                 eod_chunk_size: int = 50_000) -> None:
        self.engine = engine
        self.catalogue = catalogue
        self.clock = clock
        self.eod_chunk_size = eod_chunk_size
        self.listeners: list[Listener] = []
        self._product_texts: dict[str, str] = {}  # stored definitions already in the catalogue
        self._jurisdiction_texts: dict[str, str] = {}  # the same for jurisdictions

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener`` inside the transaction of every change (see :class:`Change`)."""
        self.listeners.append(listener)

    def publish(self, change: Change) -> None:
        """Call every listener with ``change`` (inside the caller's transaction)."""
        for listener in self.listeners:
            listener(change)

    # -- business date -------------------------------------------------------------
    def open_date(self, connection: Connection | None = None) -> date:
        """The open business date (set once, then moved only by close of business)."""
        if connection is None:
            with self.engine.connect() as conn:
                return self.open_date(conn)
        row = connection.execute(_OPEN_DATE).first()
        if row is None:
            raise Refused([Problem("business_date.unset", "the business date is not set; run "
                                   "`lendsafe init --date YYYY-MM-DD` (or `lendsafe demo`)")])
        return row[0]  # type: ignore[no-any-return]

    def initialise(self, on: date) -> None:
        """Set the first open business date and register the products (idempotent)."""
        with self.engine.begin() as connection:
            if connection.execute(select(t.business_calendar)).first() is None:
                connection.execute(insert(t.business_calendar).values(id=1, open_date=on))
            known = set(connection.execute(select(t.products.c.id)).scalars())
            for product in self.catalogue.products.values():
                if product.id not in known:
                    connection.execute(insert(t.products).values(
                        id=product.id, type=product.type.value,
                        definition=json.dumps(product_definition(product), sort_keys=True),
                        created_at=self.clock()))
            for product_id in sorted(known):
                if product_id in self.catalogue.products:
                    self.refresh_product(connection, product_id)
            jurisdictions.register(connection, self.catalogue, self.clock(),
                                   self._jurisdiction_texts)

    # -- quotes and booking --------------------------------------------------------
    def quote(self, product_id: str, amount_minor: int, term: Term, start: date,
              annual_rate: Decimal | None = None) -> Quote:
        """A checked quote for a product (refused with named problems if a rule breaks)."""
        product = self.catalogue.product(product_id)
        terms = terms_for_product(product, amount_minor, term, start,
                                  self.catalogue.calendar(product), annual_rate)
        return checked_quote(terms, self.catalogue.jurisdictions[product.jurisdiction])

    def book(self, borrower_ref: str, product_id: str, amount_minor: int, term: Term,
             region: str | None = None, actor: str = "system",
             application_id: str | None = None) -> int:
        """Book and disburse a loan on the open business date; returns its id. With
        ``application_id`` the loan must match that approved credit decision (product,
        borrower, amount within the approved limit) and uses it up."""
        with self.engine.begin() as connection:
            on = self.open_date(connection)
            product = self.refresh_product(connection, product_id)
            jurisdictions.refresh(connection, self.catalogue, self._jurisdiction_texts,
                                  product.jurisdiction)
            quote = self.quote(product_id, amount_minor, term, on)
            if application_id is not None:
                _check_application(connection, application_id, borrower_ref, product_id,
                                   amount_minor)
            borrower_id = self._borrower(connection, borrower_ref, region)
            self._refuse_rollover(connection, borrower_id, product_id)
            loan_id, events = self._insert_loan(connection, borrower_id, product_id, quote, on)
            if application_id is not None:
                connection.execute(update(t.loans).where(t.loans.c.id == loan_id).values(
                    application_id=application_id))
            self.publish(Change(connection, "loan.book", actor, on, tuple(events),
                                 f"loan:{loan_id}"))
            return loan_id

    def _refuse_rollover(self, connection: Connection, borrower_id: int, product_id: str) -> None:
        """No new single-period loan while one is unpaid where the jurisdiction forbids it."""
        product = self.catalogue.product(product_id)
        rules = self.catalogue.jurisdictions[product.jurisdiction]
        if product.type is not LoanType.BULLET or rules.single_period_rollover_allowed:
            return
        open_bullets = connection.execute(select(t.loans.c.id).where(
            t.loans.c.borrower_id == borrower_id, t.loans.c.type == LoanType.BULLET.value,
            t.loans.c.status != LoanStatus.CLOSED.value)).scalars().all()
        if open_bullets:
            raise Refused([Problem(
                f"{rules.code}.single_period_rollover",
                f"{rules.code} does not allow rolling a single-period loan over: loan "
                f"{open_bullets[0]} is not yet repaid; repay it first, or ask for an "
                "instalment plan", field="product",
                figures={"open_loan": str(open_bullets[0])})])

    def _borrower(self, connection: Connection, ref: str, region: str | None) -> int:
        found = connection.execute(
            select(t.borrowers.c.id).where(t.borrowers.c.external_ref == ref)).first()
        if found is not None:
            return int(found[0])
        result = connection.execute(insert(t.borrowers).values(
            external_ref=ref, region=region, created_at=self.clock()))
        return int(result.inserted_primary_key[0])  # type: ignore[index]

    def _insert_loan(self, connection: Connection, borrower_id: int, product_id: str,
                     quote: Quote, on: date) -> tuple[int, list[ev.LoanEvent]]:
        product = self.catalogue.product(product_id)
        rules = self.catalogue.servicing_rules(product)
        schedule = quote.schedule
        placeholder = open_loan(0, on, schedule, rules)[0]
        row = {
            "borrower_id": borrower_id, "product_id": product_id,
            "currency": product.currency.code, "type": product.type.value,
            "rules_id": rules_id(connection, rules), "principal_minor": schedule.principal_minor,
            "disbursed_minor": schedule.disbursed_minor,
            "upfront_fee_minor": schedule.upfront_fee_minor,
            "annual_rate_disclosed": format_rate(quote.annual_rate_disclosed, 6),
            "disbursed_on": on, "maturity_date": schedule.maturity_date,
            "term": str(quote.terms.term),
            "booking_terms": json.dumps(booking_terms(product), sort_keys=True),
            "penalty_rate_ppm": rules.penalty_rate_ppm, "grace_days": rules.grace_days,
            "charge_off_days": rules.charge_off_days, **servicing_columns(placeholder),
        }
        loan_id = int(connection.execute(insert(t.loans).values(row)).inserted_primary_key[0])  # type: ignore[index]
        state, events = open_loan(loan_id, on, schedule, rules)
        connection.execute(insert(t.installments), installment_rows(loan_id, state.installments))
        append_journal(connection, events, reference=f"loan:{loan_id}")
        return loan_id, list(events)

    # -- payments --------------------------------------------------------------------
    def pay(self, loan_id: int, amount_minor: int, idempotency_key: str,
            actor: str = "system") -> dict[str, Any]:
        """Post a payment once per idempotency key; a retry gets the first answer back."""
        fingerprint = _fingerprint(loan_id, amount_minor)
        try:
            with self.engine.begin() as connection:
                return self._pay(connection, loan_id, amount_minor, idempotency_key, fingerprint,
                                 actor)
        except IntegrityError:
            # a concurrent request with the same key committed first: answer as it did
            with self.engine.connect() as connection:
                replay = self._replay(connection, idempotency_key, fingerprint)
            if replay is None:
                raise
            return replay

    def _pay(self, connection: Connection, loan_id: int, amount_minor: int, key: str,
             fingerprint: str, actor: str) -> dict[str, Any]:
        record = load_loan(connection, loan_id, for_update=True)
        replay = self._replay(connection, key, fingerprint)
        if replay is not None:
            return replay
        on = self.open_date(connection)
        state = record.state
        new_state, allocation, events = apply_payment(state, 0, amount_minor, on)
        payment_id = self._insert_payment(connection, record.loan_id, key, fingerprint,
                                          amount_minor, on, allocation,
                                          recovery=state.status is LoanStatus.CHARGED_OFF)
        save_state(connection, new_state, was=state)
        append_journal(connection, events, reference=f"payment:{payment_id}")
        response = self._payment_response(payment_id, record.currency, amount_minor, on,
                                          allocation, new_state.status, state.status)
        connection.execute(_SET_RESPONSE, {"b_id": payment_id,
                                           "v_response": json.dumps(response, sort_keys=True)})
        dates = [(i.seq, i.due_date) for i in state.installments]
        changed = dates != [(i.seq, i.due_date) for i in new_state.installments]
        self.publish(Change(connection, "loan.pay", actor, on, tuple(events),
                            f"payment:{payment_id}", schedule_changed=changed))
        return response | {"loan_id": loan_id, "replayed": False}

    def _insert_payment(self, connection: Connection, loan_id: int, key: str, fingerprint: str,
                        amount: int, on: date, allocation: Allocation, recovery: bool) -> int:
        values = {
            "loan_id": loan_id, "idempotency_key": key, "request_hash": fingerprint,
            "amount_minor": amount, "received_on": on,
            "principal_minor": allocation.principal_minor,
            "interest_minor": allocation.interest_minor, "fee_minor": allocation.fee_minor,
            "penalty_minor": allocation.penalty_minor, "excess_minor": allocation.excess_minor,
            "recovery_minor": amount if recovery else 0, "response": "{}",
            "created_at": self.clock(),
        }
        result = connection.execute(_INSERT_PAYMENT, values)
        return int(result.inserted_primary_key[0])  # type: ignore[index]

    @staticmethod
    def _payment_response(payment_id: int, code: str, amount: int, on: date,
                          allocation: Allocation, status: LoanStatus,
                          before: LoanStatus) -> dict[str, Any]:
        cur = currency(code)
        recovery = before is LoanStatus.CHARGED_OFF
        parts = {
            name: format_amount(getattr(allocation, f"{name}_minor"), cur)
            for name in ("principal", "interest", "fee", "penalty", "excess")
        }
        return {
            "payment_id": payment_id, "amount": format_amount(amount, cur),
            "currency": cur.code, "received_on": on.isoformat(), "allocation": parts,
            "recovery": format_amount(amount if recovery else 0, cur),
            "loan_status": status.value,
        }

    @staticmethod
    def _replay(connection: Connection, key: str, fingerprint: str) -> dict[str, Any] | None:
        row = connection.execute(_PAYMENT_BY_KEY, {"b_key": key}).first()
        if row is None:
            return None
        if row.request_hash != fingerprint:
            raise Conflict(f"idempotency key {key!r} was already used for a different payment "
                           "(another loan or amount); use a new key for a new payment")
        return json.loads(row.response) | {"loan_id": row.loan_id, "replayed": True}  # type: ignore[no-any-return]

    def payoff(self, loan_id: int, on: date | None = None) -> dict[str, Any]:
        """What repays the loan in full on ``on`` (default: the open business date).

        A later date is projected by running close of business in memory up to the day
        before it, assuming no payments in between (penalties included).
        """
        with self.engine.connect() as connection:
            record = load_loan(connection, loan_id)
            today = self.open_date(connection)
        state = record.state
        on = on or today
        if on < today:
            raise Refused([Problem("payoff.past", f"a payoff quote is for today ({today}) or "
                                   f"a later date, not {on}", field="date")])
        while state.open_date < on:
            state = close_day(state, state.open_date)[0]
        quote = payoff_amount(state, on)
        cur = currency(record.currency)
        return {
            "loan_id": loan_id, "payoff_date": on.isoformat(),
            "total": format_amount(quote.total_minor, cur),
            **{name: format_amount(getattr(quote, f"{name}_minor"), cur)
               for name in ("principal", "interest", "fee", "penalty")},
        }

    # -- payment reversal (replay) -------------------------------------------------
    def reverse_payment(self, payment_id: int, actor: str = "system",
                        connection: Connection | None = None) -> dict[str, Any]:
        """Reverse a payment: the loan becomes what it would be had the payment never come.

        The loan is rebuilt from booking without the payment (the rule is in
        ``lendsafe.domain.lending.payments``); the payment's own transfers are posted back
        (``reversal:payment:ID``) and the differences the replay makes to accruals,
        penalties, charge-off and later payments' allocations are posted as balancing
        transfers (``reversal:payment:ID:replay``); later payments get their new split, the
        payment is marked reversed, and a ``loan.reverse_payment`` change is published. A
        payment is reversed once (``payment.already_reversed``).
        """
        if connection is None:
            with self.engine.begin() as own:
                return self.reverse_payment(payment_id, actor, own)
        plan = self.plan_reversal(connection, payment_id, lock=True)
        self._write_reversal(connection, plan, actor)
        before, after = plan.before.state, plan.after.state
        dates = [(i.seq, i.due_date) for i in before.installments]
        changed = dates != [(i.seq, i.due_date) for i in after.installments]
        reversed_event = PaymentReversed(before.loan_id, plan.on, payment_id,
                                         int(plan.history.payments[payment_id].amount_minor))
        self.publish(Change(connection, "loan.reverse_payment", actor, plan.on,
                            (reversed_event,), f"payment:{payment_id}",
                            schedule_changed=changed))
        return reversal_document(plan)

    def plan_reversal(self, connection: Connection, payment_id: int,
                      lock: bool = False) -> ReversalPlan:
        """What reversing ``payment_id`` would do (nothing is written); refused when it
        cannot be done (already reversed; a history the replay cannot rebuild)."""
        found = connection.execute(select(t.payments.c.loan_id).where(
            t.payments.c.id == payment_id)).first()
        if found is None:
            raise NotFound(f"payment {payment_id} does not exist")
        record = load_loan(connection, int(found.loan_id), for_update=lock)
        history = loan_history(connection, record.loan_id)
        if payment_id in history.reversed:
            raise Refused([Problem(
                "payment.already_reversed", f"payment {payment_id} is already reversed; a "
                "payment is reversed once", field="target",
                figures={"payment_id": str(payment_id)})])
        reversal.refuse_changed_loan(connection, record)
        opened = self._booked_state(record, history)
        remaining = tuple(i for i in history.items if i.payment_id != payment_id)
        try:
            after = replay(opened[0], opened[1], remaining, record.state.last_closed)
        except ServicingError as error:
            raise Refused([Problem("payment.reversal_replay", f"loan {record.loan_id} "
                                   f"cannot be rebuilt without payment {payment_id}: {error}",
                                   field="target")]) from None
        mirrored = tuple(r for r in history.journal if r.reference == f"payment:{payment_id}")
        return ReversalPlan(payment_id, self.open_date(connection), record, history, after,
                            mirrored, reversal.replay_adjustments(history.journal, mirrored, after),
                            reversal.reallocated(history, after))

    def _booked_state(self, record: LoanRecord, history: LoanHistory
                      ) -> tuple[LoanState, list[ev.LoanEvent]]:
        """The loan as booked: the schedule whose replay with the loan's whole history
        reproduces the stored loan and its journal (else refused)."""
        product = self.catalogue.products.get(record.product_id)
        if product is not None and record.booking_terms is not None:
            product = as_booked(product, record.booking_terms)  # not as changed since
        calendar = None if product is None else self.catalogue.calendar(product)
        for schedule in reversal.booking_schedules(record, product, calendar):
            opened = open_loan(record.loan_id, record.state.disbursed_on, schedule,
                               record.state.rules)
            try:
                rebuilt = replay(opened[0], opened[1], history.items, record.state.last_closed)
            except ServicingError:
                continue
            if reversal.same_loan(rebuilt.state, record.state) and reversal.account_balances(
                    reversal.transfers(rebuilt.events)) == reversal.account_balances(
                    (r.debit_account, r.credit_account, r.amount_minor) for r in history.journal):
                return opened
        raise Refused([Problem(
            "payment.reversal_history", f"loan {record.loan_id}'s history cannot be rebuilt "
            "from its booking (replaying it does not give the stored loan and journal); "
            "correct it with a manual adjustment instead", field="target")])

    def _write_reversal(self, connection: Connection, plan: ReversalPlan, actor: str) -> None:
        state = plan.after.state
        save_state(connection, state, was=None, charged_off_on=plan.after.charged_off_on)
        reference = f"{REVERSAL_PREFIX}{plan.payment_id}"
        common = {"business_day": day_number(plan.on), "loan_id": state.loan_id}
        rows = [{**common, "kind": "reversal", "debit_account": r.credit_account,
                 "credit_account": r.debit_account, "amount_minor": r.amount_minor,
                 "reference": reference} for r in plan.mirrored]
        rows += [{**common, "kind": "reversal_replay", "debit_account": debit,
                  "credit_account": credit, "amount_minor": amount,
                  "reference": f"{reference}:replay"} for debit, credit, amount in plan.adjustments]
        if rows:
            connection.execute(insert(t.journal), rows)
        for payment_id, values in plan.reallocated.items():
            connection.execute(update(t.payments).where(t.payments.c.id == payment_id)
                               .values(values))
        payment = plan.history.payments[plan.payment_id]
        response = json.loads(payment.response) | {"reversed": {
            "on": plan.on.isoformat(), "by": actor, "reference": reference}}
        connection.execute(update(t.payments).where(t.payments.c.id == plan.payment_id)
                           .values(response=json.dumps(response, sort_keys=True)))

    # -- write-off override --------------------------------------------------------
    def write_off(self, loan_id: int, actor: str = "system",
                  connection: Connection | None = None) -> dict[str, Any]:
        """Write every receivable of an active loan off on the open business date (an
        approved override): the loan is charged off, the write-off transfers are posted
        (``write_off:loan:ID``) and a ``loan.write_off`` change is published."""
        if connection is None:
            with self.engine.begin() as own:
                return self.write_off(loan_id, actor, own)
        record = load_loan(connection, loan_id, for_update=True)
        on = self.open_date(connection)
        state = record.state
        if state.status is not LoanStatus.ACTIVE:
            raise Refused([Problem("loan.write_off_status", f"loan {loan_id} is "
                                   f"{state.status.value}; only an active loan is written off",
                                   field="target")])
        try:
            new_state, events = write_off(state, on)
        except ServicingError as error:
            raise Refused([Problem("loan.write_off_date", str(error), field="target")]) from None
        save_state(connection, new_state, was=None, charged_off_on=on)
        append_journal(connection, events, reference=f"{WRITE_OFF_PREFIX}{loan_id}")
        self.publish(Change(connection, "loan.write_off", actor, on, tuple(events),
                            f"loan:{loan_id}", schedule_changed=False))
        charged = events[0]
        return {"loan_id": loan_id, "on": on.isoformat(), "status": new_state.status.value,
                "written_off_minor": {name: getattr(charged, f"{name}_minor")
                                      for name in ("principal", "interest", "fee", "penalty")}}

    # -- jurisdictions and products ------------------------------------------------
    def change_jurisdiction(self, connection: Connection, code: str, changes: dict[str, Any],
                            actor: str = "system") -> dict[str, Any]:
        """Change a jurisdiction's stored rules (an approved ``jurisdiction.change``) in the
        caller's transaction; published as a ``jurisdiction.change`` change."""
        on = self.open_date(connection)
        result = jurisdictions.change(connection, self.catalogue, code, changes, lambda: (
            self.publish(Change(connection, "jurisdiction.change", actor, on, (),
                                f"jurisdiction:{code}", schedule_changed=False))),
            self._jurisdiction_texts)
        bump_catalogue_version(connection)
        return result

    # -- products ------------------------------------------------------------------
    def change_product(self, connection: Connection, product_id: str,
                       changes: dict[str, Any], actor: str = "system") -> dict[str, Any]:
        """Change a product's stored definition (the product in force) in the caller's
        transaction: the changed definition is validated as a whole (refused with the
        catalogue's problems), stored, published as a ``product.change`` change, and put in
        this process's catalogue once the transaction commits. Loans already booked keep
        the rules they were booked with."""
        row = connection.execute(select(t.products).where(
            t.products.c.id == product_id).with_for_update()).first()
        if row is None:
            raise NotFound(f"product {product_id!r} does not exist")
        if not changes:
            raise Refused([Problem("product.changes_empty", "a product change names at least "
                                   "one field to change", field="changes")])
        if "id" in changes and changes["id"] != product_id:
            raise Refused([Problem("product.id_fixed", "a product's id cannot change",
                                   field="changes")])
        before = self._stored_definition(row)
        unknown = sorted(set(changes) - set(before) - {"frequency"})
        if unknown:
            raise Refused([Problem("product.field_unknown", f"unknown product fields "
                                   f"{unknown}; known: {', '.join(sorted(before))}",
                                   field="changes")])
        product = product_from_mapping({**before, **changes})
        if product.jurisdiction not in self.catalogue.jurisdictions:
            raise Refused([Problem("product.jurisdiction", f"unknown jurisdiction "
                                   f"{product.jurisdiction!r}", field="changes")])
        after = product_definition(product)
        stored = json.dumps(after, sort_keys=True)
        connection.execute(update(t.products).where(t.products.c.id == product_id).values(
            type=product.type.value, definition=stored))
        self.publish(Change(connection, "product.change", actor, self.open_date(connection),
                            (), f"product:{product_id}", schedule_changed=False))
        bump_catalogue_version(connection)
        def committed(_connection: Connection) -> None:
            self.catalogue.products[product_id] = product
            self._product_texts[product_id] = stored

        event.listen(connection, "commit", committed, once=True)
        return {"product": product_id, "before": before, "after": after}

    def _stored_definition(self, row: Any) -> dict[str, Any]:
        """A stored product definition, completed from the catalogue file when the row
        holds only part of it (rows registered before whole definitions were stored)."""
        stored = dict(json.loads(row.definition))
        seed = self.catalogue.products.get(row.id)
        return {**(product_definition(seed) if seed is not None else {}), **stored}

    def refresh_product(self, connection: Connection, product_id: str) -> Product:
        """The product in force (the database copy), put into this process's catalogue."""
        row = connection.execute(select(t.products).where(t.products.c.id == product_id)).first()
        if row is None:
            return self.catalogue.product(product_id)
        text = str(row.definition)
        if self._product_texts.get(product_id) != text:
            product = product_from_mapping(self._stored_definition(row))
            self.catalogue.products[product_id] = product
            self._product_texts[product_id] = text
        return self.catalogue.products[product_id]

    def refresh_catalogue(self, connection: Connection) -> None:
        """Every product and jurisdiction as in force (the database copies), put into this
        process's catalogue (objects that did not change stay the same objects)."""
        for product_id in list(self.catalogue.products):
            self.refresh_product(connection, product_id)
        jurisdictions.refresh(connection, self.catalogue, self._jurisdiction_texts)

    def product_listing(self) -> list[dict[str, Any]]:
        """The products on offer, each as in force (the database copy where registered):
        what ``lendsafe products`` and ``GET /products`` show."""
        with self.engine.connect() as connection:
            for product_id in list(self.catalogue.products):
                self.refresh_product(connection, product_id)
        return [product_summary(p) for p in self.catalogue.products.values()]

    def products_in_force(self) -> list[dict[str, Any]]:
        """Every registered product as stored in the database (the copy in force)."""
        with self.engine.connect() as connection:
            ids = list(connection.execute(select(t.products.c.id).order_by(
                t.products.c.id)).scalars())
            return [product_definition(self.refresh_product(connection, i)) for i in ids]

    # -- close of business -------------------------------------------------------
    def close_business(self, until: date, progress: Callable[[int], None] | None = None,
                       after_chunk: Callable[[int], None] | None = None,
                       actor: str = "system") -> list[EodSummary]:
        """Close every business date from the open one through ``until``, in order."""
        summaries = []
        on = self.open_date()
        while on <= until:
            summaries.append(self._close_one(on, progress, after_chunk, actor))
            on += timedelta(days=1)
        return summaries

    def _close_one(self, on: date, progress: Callable[[int], None] | None,
                   after_chunk: Callable[[int], None] | None, actor: str) -> EodSummary:
        with self.engine.begin() as connection:
            if connection.execute(select(t.eod_runs).where(
                    t.eod_runs.c.business_date == on)).first() is None:
                connection.execute(insert(t.eod_runs).values(
                    business_date=on, started_at=self.clock(), loans_processed=0,
                    journal_entries=0))
        result = close_business_day(self.engine, on, self.eod_chunk_size,
                                    self.catalogue.buckets, progress, after_chunk)
        with self.engine.begin() as connection:
            connection.execute(update(t.eod_runs).where(t.eod_runs.c.business_date == on).values(
                finished_at=self.clock(),
                loans_processed=t.eod_runs.c.loans_processed + result.loans,
                journal_entries=t.eod_runs.c.journal_entries + result.journal_entries))
            connection.execute(update(t.business_calendar).values(
                open_date=on + timedelta(days=1)))
            closed = ev.BusinessDayClosed(on, result.loans, result.journal_entries)
            self.publish(Change(connection, "eod.close", actor, on, (closed,),
                                 f"business_date:{on.isoformat()}"))
        return EodSummary(on, result.loans, result.journal_entries)

    # -- views ---------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Business date, loans by status and bucket, and the journal's trial balance."""
        with self.engine.connect() as connection:
            on = self.open_date(connection)
            by_status = connection.execute(select(
                t.loans.c.status, t.loans.c.bucket, t.loans.c.currency, func.count(),
                func.coalesce(func.sum(t.loans.c.principal_outstanding_minor), 0),
            ).group_by(t.loans.c.status, t.loans.c.bucket, t.loans.c.currency)).all()
            entries = journal_entry_count(connection)
            balances = trial_balance_by_currency(connection)
        return {
            "business_date": on.isoformat(),
            "last_closed_date": (on - timedelta(days=1)).isoformat(),
            "loans": [
                {"status": s, "bucket": b, "currency": c, "count": int(n),
                 "principal_outstanding": format_amount(int(p), currency(c))}
                for s, b, c, n, p in by_status
            ],
            "journal_entries": entries,
            "trial_balance": _trial_balance_document(balances),
        }

    def loan_ids_of(self, borrower_id: int) -> list[int]:
        """The ids of a borrower's loans, oldest first."""
        with self.engine.connect() as connection:
            return [int(i) for i in connection.execute(
                select(t.loans.c.id).where(t.loans.c.borrower_id == borrower_id)
                .order_by(t.loans.c.id)).scalars()]

    def loan_view(self, loan_id: int) -> dict[str, Any]:
        """A loan with its schedule, balances and payments (JSON convention): a statement."""
        with self.engine.connect() as connection:
            record = load_loan(connection, loan_id)
            on = self.open_date(connection)
            payments = connection.execute(select(t.payments).where(
                t.payments.c.loan_id == loan_id).order_by(t.payments.c.id)).all()
        document = loan_document(record, on)
        cur = currency(record.currency)
        document["payments"] = [
            {"payment_id": p.id, "received_on": p.received_on.isoformat(),
             "amount": format_amount(p.amount_minor, cur),
             "allocation": {name: format_amount(getattr(p, f"{name}_minor"), cur)
                            for name in ("principal", "interest", "fee", "penalty", "excess",
                                         "recovery")},
             "reversed": "reversed" in json.loads(p.response)}
            for p in payments
        ]
        return document


def loan_document(record: Any, on: date) -> dict[str, Any]:
    """The JSON form of a loan record."""
    cur = currency(record.currency)
    state = record.state

    def money(value: int) -> str:
        return format_amount(value, cur)

    next_due = next((i for i in state.installments if not i.settled), None)
    return {
        "loan_id": record.loan_id, "borrower_id": record.borrower_id,
        "product": record.product_id, "currency": cur.code, "status": state.status.value,
        "principal": money(record.principal_minor), "disbursed": money(record.disbursed_minor),
        "disbursed_on": state.disbursed_on.isoformat(),
        "maturity_date": record.maturity_date.isoformat(),
        "annual_rate_disclosed": record.annual_rate_disclosed,
        "days_past_due": state.days_past_due, "bucket": state.bucket,
        "balances": {
            "principal": money(state.principal_outstanding),
            "interest": money(state.interest_receivable),
            "fee": money(state.fee_receivable), "penalty": money(state.penalty_receivable),
        },
        "next_due": None if next_due is None else {
            "due_date": next_due.due_date.isoformat(),
            "amount": money(next_due.principal_due - next_due.principal_paid
                            + next_due.interest_due - next_due.interest_paid
                            + next_due.fee_due - next_due.fee_paid),
        },
        "installments": [
            {"seq": i.seq, "due_date": i.due_date.isoformat(), "principal": money(i.principal_due),
             "interest": money(i.interest_due), "fees": money(i.fee_due),
             "total": money(i.principal_due + i.interest_due + i.fee_due),
             "paid": money(i.principal_paid + i.interest_paid + i.fee_paid)}
            for i in state.installments
        ],
        "as_of": on.isoformat(),
    }


def _trial_balance_document(balances: dict[str, dict[str, int]]) -> dict[str, Any]:
    """Debits and credits per currency; the top-level figures are the main currency's."""
    rows: list[dict[str, Any]] = []
    for code, accounts in sorted(balances.items()):
        cur = currency(code)
        debits = sum(v for v in accounts.values() if v > 0)
        credits = -sum(v for v in accounts.values() if v < 0)
        rows.append({"currency": code, "debits": format_amount(debits, cur),
                     "credits": format_amount(credits, cur), "balanced": debits == credits,
                     "accounts": {a: format_amount(v, cur) for a, v in sorted(accounts.items())}})
    main = max(rows, key=lambda r: Decimal(r["debits"]), default=None)
    return {
        "currency": main["currency"] if main else None,
        "debits": main["debits"] if main else "0",
        "credits": main["credits"] if main else "0",
        "balanced": all(r["balanced"] for r in rows),
        "by_currency": rows,
    }


def _fingerprint(loan_id: int, amount_minor: int) -> str:
    return hashlib.sha256(f"{loan_id}:{amount_minor}".encode()).hexdigest()


def _check_application(connection: Connection, application_id: str, borrower_ref: str,
                       product_id: str, amount_minor: int) -> None:
    """Refuse a booking that the named credit decision does not cover (every reason)."""
    log, apps = dt.decision_log.c, dt.applications.c
    row = connection.execute(
        select(log.decision, log.limit_minor, apps.product_id, apps.borrower_ref)
        .join_from(dt.decision_log, dt.applications, apps.id == log.application_id)
        .where(log.application_id == application_id).order_by(log.id.desc()).limit(1)).first()
    if row is None:
        raise Refused([Problem("application.unknown", f"no decided credit application "
                               f"{application_id!r}", field="application_id")])
    problems = []
    if row.decision != "approve":
        problems.append(Problem("application.not_approved", f"application {application_id!r} "
                                f"was decided {row.decision!r}, not approved",
                                field="application_id", figures={"decision": row.decision}))
    if row.product_id != product_id:
        problems.append(Problem("application.product", f"application {application_id!r} was "
                                f"for {row.product_id!r}, not {product_id!r}", field="product"))
    if row.borrower_ref is not None and row.borrower_ref != borrower_ref:
        problems.append(Problem("application.borrower", f"application {application_id!r} "
                                "belongs to another borrower", field="borrower"))
    if amount_minor > int(row.limit_minor):
        problems.append(Problem("application.limit", f"amount {amount_minor} is above the "
                                f"approved limit {int(row.limit_minor)} (minor units)",
                                field="amount", figures={"limit_minor": str(row.limit_minor)}))
    if connection.execute(select(t.loans.c.id).where(
            t.loans.c.application_id == application_id)).first() is not None:
        problems.append(Problem("application.used", f"application {application_id!r} already "
                                "has a loan; apply again for another", field="application_id"))
    if problems:
        raise Refused(problems)


def product_summary(product: Product) -> dict[str, Any]:
    """A product's listing entry (``lendsafe products --json``, ``GET /products``)."""
    return {
        "id": product.id, "type": product.type.value, "name": product.name,
        "currency": product.currency.code, "jurisdiction": product.jurisdiction,
        "annual_rate": format_rate(product.annual_rate), "term_min": str(product.term_min),
        "term_max": str(product.term_max),
        "frequency": product.frequency.value if product.frequency else None,
    }


__all__ = ["Conflict", "EodSummary", "LendingService", "NotFound",
           "ReversalPlan", "loan_document", "product_definition", "reversal_document"]


def quote_document(quote: Quote) -> dict[str, Any]:
    """The JSON form of a quote (money as major-unit strings, rates as decimal strings)."""
    cur = quote.terms.currency
    schedule = quote.schedule

    def money(value: int) -> str:
        return format_amount(value, cur)

    return {
        "type": quote.terms.type.value,
        "currency": cur.code,
        "principal": money(schedule.principal_minor),
        "disbursed": money(schedule.disbursed_minor),
        "upfront_fee": money(schedule.upfront_fee_minor),
        "fee_mode": schedule.fee_mode.value,
        "start": quote.terms.start.isoformat(),
        "maturity_date": schedule.maturity_date.isoformat(),
        "annual_rate_contract": format_rate(quote.terms.annual_rate, 4),
        "annual_rate_disclosed": format_rate(quote.annual_rate_disclosed, 4),
        "annual_rate_compound": format_rate(quote.annual_rate_compound, 4),
        "annual_rate_labels": {
            "annual_rate_disclosed": "IRR x periods per year (simple, 单利; US APR)",
            "annual_rate_compound": "(1 + IRR)^periods per year - 1 (compound, 复利)",
        },
        "apr_method": quote.apr.method.value,
        "unit_period": quote.apr.unit_period.value,
        "periodic_rate": str(quote.apr.periodic_rate),
        "total_interest": money(schedule.interest_minor),
        "total_cost": money(schedule.total_cost_minor),
        "total_repayable": money(schedule.total_repayable_minor),
        "installments": [
            {
                "seq": i.seq,
                "due_date": i.due_date.isoformat(),
                "principal": money(i.principal_minor),
                "interest": money(i.interest_minor),
                "fees": money(i.fee_minor),
                "total": money(i.total_minor),
            }
            for i in schedule.installments
        ],
    }


def catalogue_version(connection: Connection) -> int:
    """How many product and jurisdiction changes have been approved (0 before the first)."""
    return int(connection.execute(_CATALOGUE_VERSION).scalar() or 0)


def bump_catalogue_version(connection: Connection) -> None:
    """Count one more approved change, in the caller's transaction (see ``catalogue_state``)."""
    if not connection.execute(update(t.catalogue_state).where(t.catalogue_state.c.id == 1)
                              .values(version=t.catalogue_state.c.version + 1)).rowcount:
        connection.execute(insert(t.catalogue_state).values(id=1, version=1))


# statements every use case or payment runs, built once (building and keying them cost
# more than running them)
_OPEN_DATE = select(t.business_calendar.c.open_date)
_CATALOGUE_VERSION = select(t.catalogue_state.c.version).where(t.catalogue_state.c.id == 1)
_INSERT_PAYMENT = insert(t.payments)
_PAYMENT_BY_KEY = select(t.payments).where(t.payments.c.idempotency_key == bindparam("b_key"))
_SET_RESPONSE = update(t.payments).where(t.payments.c.id == bindparam("b_id")).values(
    response=bindparam("v_response"))


def booking_terms(product: Product) -> dict[str, str]:
    """The product fields that shape a schedule but are not in its servicing rules."""
    return {"rate_basis": product.rate_basis.value, "fee_mode": product.fee_mode.value,
            "calendar": product.calendar, "rolling": product.rolling.value}


def as_booked(product: Product, terms: dict[str, str]) -> Product:
    """``product`` with the schedule-shaping fields a loan was booked with."""
    return dataclasses.replace(
        product, rate_basis=RateBasis(terms["rate_basis"]), fee_mode=FeeMode(terms["fee_mode"]),
        calendar=terms["calendar"], rolling=Rolling(terms["rolling"]))
