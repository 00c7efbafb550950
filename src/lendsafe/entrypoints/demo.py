"""The main job: a seeded simulation of a lending book, and a portfolio report.

Books synthetic loans of every product over the first weeks, then runs close of business
day after day while borrowers (each with a seeded behaviour: punctual, late, early settler,
defaulter) pay, pay late, prepay or stop paying. Prints a portfolio report at the end.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import func, select

from lendsafe.adapters.db import tables as t
from lendsafe.bootstrap import Container
from lendsafe.domain.calendar import day_number
from lendsafe.domain.lending.product import Product, Term, TermUnit
from lendsafe.domain.money import currency, format_amount, format_rate, parse_amount
from lendsafe.domain.problems import Refused

DEMO_START = date(2026, 1, 5)
CNY = currency("CNY")  # the demo books CNY products only, so the report sums one currency
BEHAVIOURS = (("punctual", 0.70), ("late", 0.17), ("settler", 0.08), ("defaulter", 0.05))


@dataclass(frozen=True)
class Borrower:
    """A synthetic borrower's habit."""

    behaviour: str
    late_days: int


def _behaviour(rng: random.Random) -> Borrower:
    pick = rng.random()
    for name, share in BEHAVIOURS:
        if pick < share:
            return Borrower(name, rng.randint(2, 40) if name == "late" else 0)
        pick -= share
    return Borrower("punctual", 0)


def _request(rng: random.Random, product: Product) -> tuple[int, Term]:
    low, high = product.amount_min_minor, min(product.amount_max_minor, 2_000_000)
    step = 10_000 if low >= 10_000 else 1_000
    amount = max(low, rng.randrange(low, high + 1, step))
    lo, hi = product.term_min.count, product.term_max.count
    count = rng.randint(lo, hi)
    if product.term_min.unit is TermUnit.WEEKS and product.frequency is not None:
        count -= count % 2 if product.frequency.value == "biweekly" else 0
    return amount, Term(max(count, lo), product.term_min.unit)


class Simulation:
    """State of one demo run."""

    def __init__(self, container: Container, loans: int, days: int, seed: int) -> None:
        self.container = container
        self.service = container.lending
        self.rng = random.Random(seed)
        self.loans_target = loans
        self.days = days
        self.borrowers: dict[int, Borrower] = {}
        self.booked = 0
        self.refused = 0
        self.payments = 0

    def book_some(self, count: int) -> None:
        products = [p for p in self.container.catalogue.products.values()
                    if p.currency.code == "CNY"]  # one currency keeps the report summable
        for _ in range(count):
            product = self.rng.choice(products)
            amount, term = _request(self.rng, product)
            ref = f"demo-{self.booked + self.refused + 1}"
            try:
                loan_id = self.service.book(ref, product.id, amount, term,
                                            region=self.rng.choice(["GD", "SC", "HB", "ZJ"]))
            except Refused:
                self.refused += 1
                continue
            self.borrowers[loan_id] = _behaviour(self.rng)
            self.booked += 1

    def pay_due(self, on: date) -> None:
        """Each borrower with something due or overdue acts by their habit."""
        i = t.installments.c
        unpaid = (i.principal_due_minor + i.interest_due_minor + i.fee_due_minor
                  - i.principal_paid_minor - i.interest_paid_minor - i.fee_paid_minor)
        penalty = t.loans.c.penalty_recognized_minor - t.loans.c.penalty_paid_minor
        with self.service.engine.connect() as connection:
            rows = connection.execute(
                select(i.loan_id, func.min(i.due_day), func.sum(unpaid), func.max(penalty))
                .join(t.loans, t.loans.c.id == i.loan_id)
                .where(t.loans.c.status == "active", i.due_day <= day_number(on), unpaid > 0)
                .group_by(i.loan_id)).all()
        for loan_id, oldest_due_day, owed, penalty_owed in rows:
            days_late = day_number(on) - int(oldest_due_day)
            self._act(int(loan_id), days_late, int(owed) + int(penalty_owed), on)
        self._settle_some(on)

    def _act(self, loan_id: int, days_late: int, owed: int, on: date) -> None:
        habit = self.borrowers.get(loan_id, Borrower("punctual", 0))
        if habit.behaviour == "defaulter" or days_late < habit.late_days:
            return
        if habit.behaviour == "late" and self.rng.random() < 0.3:
            self.borrowers[loan_id] = Borrower("late", habit.late_days + self.rng.randint(5, 20))
        self.service.pay(loan_id, owed, f"demo:{loan_id}:{on.isoformat()}")
        self.payments += 1

    def _settle_some(self, on: date) -> None:
        with self.service.engine.connect() as connection:
            active = set(connection.execute(select(t.loans.c.id).where(
                t.loans.c.status == "active")).scalars())
        settlers = [i for i, b in self.borrowers.items()
                    if b.behaviour == "settler" and i in active]
        for loan_id in self.rng.sample(settlers, k=min(len(settlers), 2)):
            if self.rng.random() < 0.5:
                continue
            total = parse_amount(self.service.payoff(loan_id)["total"], CNY)
            amount = total if self.rng.random() < 0.5 else max(1, total // 3)  # or partial
            self.service.pay(loan_id, amount, f"demo-settle:{loan_id}:{on.isoformat()}")
            self.payments += 1
            if amount == total:
                self.borrowers[loan_id] = Borrower("punctual", 0)


def run_demo(container: Container, loans: int, days: int, seed: int,
             quiet: bool = False) -> dict[str, Any]:
    """Run the simulation on the configured database and return the portfolio report."""
    console = Console(stderr=True, quiet=quiet)
    service = container.lending
    service.initialise(DEMO_START)
    simulation = Simulation(container, loans, days, seed)
    booking_days = max(1, min(days // 2, 60))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("simulating business days", total=days)
        for day in range(days):
            on = service.open_date()
            if day < booking_days:
                simulation.book_some(loans // booking_days + (1 if day < loans % booking_days
                                                              else 0))
            simulation.pay_due(on)
            service.close_business(on)
            progress.advance(task)
    report = portfolio_report(container)
    report["simulation"] = {"loans_booked": simulation.booked, "refused": simulation.refused,
                            "payments": simulation.payments, "days": days, "seed": seed}
    if not quiet:
        render_report(report, Console())
    return report


def portfolio_report(container: Container) -> dict[str, Any]:
    """Balances by bucket, collected against due, and the trial balance."""
    service = container.lending
    status = service.status()
    open_day = day_number(service.open_date())
    with container.engine.connect() as connection:
        due = connection.execute(select(func.coalesce(func.sum(
            t.installments.c.principal_due_minor + t.installments.c.interest_due_minor
            + t.installments.c.fee_due_minor), 0)).where(t.installments.c.due_day < open_day)
        ).scalar_one()
        collected = connection.execute(select(
            func.coalesce(func.sum(t.payments.c.amount_minor), 0))).scalar_one()
    rate = f"{format_rate(Decimal(int(collected)) / Decimal(int(due)) * 100, 1)}%" if due else "n/a"
    return {**status, "collected": format_amount(int(collected), CNY),
            "due_to_date": format_amount(int(due), CNY), "collected_over_due": rate}


def render_report(report: dict[str, Any], console: Console) -> None:
    """Print the report as tables."""
    table = Table("status", "bucket", "loans", "principal outstanding", title="Portfolio")
    for row in sorted(report["loans"], key=lambda r: (r["status"], r["bucket"])):
        table.add_row(row["status"], row["bucket"], str(row["count"]),
                      f"{row['principal_outstanding']} {row['currency']}")
    console.print(table)
    console.print(f"collected {report['collected']} against "
                  f"{report['due_to_date']} due to date "
                  f"({report['collected_over_due']})")
    tb = report["trial_balance"]
    console.print(f"journal: {report['journal_entries']} entries; trial balance debits "
                  f"{tb['debits']} = credits {tb['credits']} {tb['currency']}: "
                  f"{'balanced' if tb['balanced'] else 'NOT BALANCED'}")
    console.print(f"open business date {report['business_date']}; "
                  f"simulation {report['simulation']}")
