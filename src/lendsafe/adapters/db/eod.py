"""Set-based close of business: a handful of SQL statements per chunk of loans.

Each chunk of loan ids is one transaction that runs every step for those loans and moves
their ``last_closed_day`` to the date, so a run killed between chunks and run again
finishes exactly where one clean run would (finished chunks are skipped by the guard
``last_closed_day = date − 1``). The statements implement the definitions documented in
``lendsafe.domain.lending.loan`` and are checked against that pure reference in tests.
Integer arithmetic only; half-up rounding of non-negative values is ``(2a + b) / (2b)``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from sqlalchemy import Connection, Engine, text

from lendsafe.domain.calendar import day_number
from lendsafe.domain.lending.delinquency import DEFAULT_BUCKETS, Bucket
from lendsafe.domain.lending.loan import PENALTY_RATE_SCALE

# unary plus keeps SQLite from scanning the primary key range when an index on the
# condition's other columns finds the few loans a step touches (PostgreSQL is unaffected)
CHUNK = "+id BETWEEN :lo AND :hi"
OPEN = f"+status = 'active' AND last_closed_day = :prev AND {CHUNK}"
CLOSED = f"+status = 'active' AND last_closed_day = :d AND {CHUNK}"
PENALTY = (
    f"(2 * arrears_minor * penalty_rate_ppm + {365 * PENALTY_RATE_SCALE}) "
    f"/ {2 * 365 * PENALTY_RATE_SCALE}"
)


def _least(a: str, b: str) -> str:
    return f"(CASE WHEN {a} < {b} THEN {a} ELSE {b} END)"


def _greatest(a: str, b: str) -> str:
    return f"(CASE WHEN {a} > {b} THEN {a} ELSE {b} END)"


# relief days d with oldest_unpaid_due_day < d <= :d (LoanState.relief_days); portable SQL
_SPAN = (f"({_least(':d', 'relief_until_day')} - "
         f"{_greatest('oldest_unpaid_due_day + 1', 'relief_from_day')} + 1)")
RELIEF_DAYS = f"(CASE WHEN relief_until_day IS NULL OR {_SPAN} <= 0 THEN 0 ELSE {_SPAN} END)"
IN_RELIEF = "(relief_until_day IS NOT NULL AND :d >= relief_from_day AND :d <= relief_until_day)"
PENALTY_DUE = (
    f"oldest_unpaid_due_day < :d AND NOT {IN_RELIEF} "
    f"AND :d - oldest_unpaid_due_day - {RELIEF_DAYS} > grace_days AND arrears_minor > 0"
)
PENALTY_TODAY = f"(CASE WHEN {PENALTY_DUE} THEN {PENALTY} ELSE 0 END)"
TARGET = (
    "(CASE WHEN :d >= cur_due_day OR cur_due_day <= cur_start_day THEN cur_interest_due_minor "
    "WHEN :d <= cur_start_day THEN cur_base_minor "
    "ELSE cur_base_minor + (2 * (cur_interest_due_minor - cur_base_minor) * (:d - cur_start_day)"
    " + (cur_due_day - cur_start_day)) / (2 * (cur_due_day - cur_start_day)) END)"
)
DELTA = (
    f"(CASE WHEN {TARGET} > cur_recognized_minor "
    f"THEN {TARGET} - cur_recognized_minor ELSE 0 END)"
)
JOURNAL = (
    "INSERT INTO journal_entries "
    "(business_day, loan_id, kind, debit_account, credit_account, amount_minor) "
)
DUE_TODAY = f"{CLOSED} AND cur_due_day = :d"
DUE_TODAY_JOINED = DUE_TODAY.replace("+id BETWEEN", "+loans.id BETWEEN")
CURRENT = "installments.loan_id = loans.id AND installments.seq = loans.cur_seq"


def _bucket_case(buckets: tuple[Bucket, ...]) -> str:
    arms = []
    for bucket in buckets:
        upper = "" if bucket.max_days is None else f" AND days <= {int(bucket.max_days)}"
        code = bucket.code.replace("'", "''")
        arms.append(f"WHEN days >= {int(bucket.min_days)}{upper} THEN '{code}'")
    return "CASE " + " ".join(arms) + " END"


def _statements(buckets: tuple[Bucket, ...]) -> list[tuple[str, str]]:
    """(name, SQL) in execution order; names ending in ``:journal`` insert entries."""
    days = (f"(CASE WHEN oldest_unpaid_due_day < :d THEN :d - oldest_unpaid_due_day - "
            f"{RELIEF_DAYS} ELSE 0 END)")
    bucket = _bucket_case(buckets).replace("days", days)
    # days past due never exceed :d − oldest_unpaid_due_day, so no loan whose oldest unpaid
    # due date is later than :d − (the smallest charge-off threshold) can be charged off
    charge_off = (f"{CLOSED} AND oldest_unpaid_due_day <= :d - :charge_off_min "
                  "AND days_past_due >= charge_off_days")
    charge_off_joined = charge_off.replace("+id BETWEEN", "+loans.id BETWEEN")
    co_columns = (
        ("principal_outstanding_minor", "1100"),
        ("interest_receivable_minor", "1110"),
        ("fee_receivable_minor", "1120"),
        ("penalty_recognized_minor - penalty_paid_minor", "1130"),
    )
    return [
        # one pass over every open loan: today's penalty and accrual, days past due, bucket
        ("interest", "UPDATE loans SET penalty_recognized_minor = penalty_recognized_minor + "
         f"{PENALTY_TODAY}, penalty_today_minor = {PENALTY_TODAY}, "
         f"interest_receivable_minor = interest_receivable_minor + {DELTA}, "
         f"cur_recognized_minor = cur_recognized_minor + {DELTA}, accrued_today_minor = {DELTA}, "
         f"days_past_due = {days}, bucket = {bucket}, last_closed_day = :d WHERE {OPEN}"),
        ("penalty:journal", f"{JOURNAL} SELECT :d, id, 'penalty', '1130', '4020', "
         f"penalty_today_minor FROM loans WHERE {CLOSED} AND penalty_today_minor > 0"),
        ("interest:journal", f"{JOURNAL} SELECT :d, id, 'accrual', '1110', '4000', "
         f"accrued_today_minor FROM loans WHERE {CLOSED} AND accrued_today_minor > 0"),
        ("fee:journal", f"{JOURNAL} SELECT :d, loan_id, 'fee', '1120', '4010', "
         "fee_due_minor - fee_recognized_minor FROM installments WHERE (loan_id, seq) IN "
         f"(SELECT id, cur_seq FROM loans WHERE {DUE_TODAY}) "
         "AND fee_due_minor > fee_recognized_minor"),
        ("due", "UPDATE loans SET fee_receivable_minor = fee_receivable_minor "
         "+ installments.fee_due_minor - installments.fee_recognized_minor, "
         "arrears_minor = arrears_minor + installments.principal_due_minor "
         "- installments.principal_paid_minor + installments.interest_due_minor "
         f"- installments.interest_paid_minor FROM installments WHERE {CURRENT} "
         f"AND {DUE_TODAY_JOINED}"),
        ("due:recognise", "UPDATE installments SET interest_recognized_minor = interest_due_minor,"
         " fee_recognized_minor = fee_due_minor WHERE (loan_id, seq) IN (SELECT id, cur_seq "
         f"FROM loans WHERE {DUE_TODAY})"),
        ("due:advance", "UPDATE loans SET cur_seq = nxt.seq, cur_start_day = nxt.start_day, "
         "cur_due_day = nxt.due_day, cur_base_minor = nxt.interest_recognized_minor, "
         "cur_interest_due_minor = nxt.interest_due_minor, "
         "cur_recognized_minor = nxt.interest_recognized_minor FROM installments AS nxt "
         "WHERE nxt.loan_id = loans.id AND nxt.seq = loans.cur_seq + 1 AND "
         f"{DUE_TODAY_JOINED}"),
        ("due:last", "UPDATE loans SET cur_seq = NULL, cur_start_day = NULL, cur_due_day = NULL,"
         " cur_base_minor = 0, cur_interest_due_minor = 0, cur_recognized_minor = 0 "
         f"WHERE {DUE_TODAY}"),
        *[
            ("charge_off:journal", f"{JOURNAL} SELECT :d, id, 'charge_off', '5000', '{account}', "
             f"{column} FROM loans WHERE {charge_off} AND {column} > 0")
            for column, account in co_columns
        ],
        ("charge_off:cursor", "UPDATE installments SET interest_recognized_minor = "
         "loans.cur_recognized_minor FROM loans WHERE loans.id = installments.loan_id AND "
         f"loans.cur_seq = installments.seq AND {charge_off_joined}"),
        ("charge_off", "UPDATE loans SET status = 'charged_off', charged_off_on = :date, "
         "principal_outstanding_minor = 0, interest_receivable_minor = 0, "
         "fee_receivable_minor = 0, cur_seq = NULL, cur_start_day = NULL, cur_due_day = NULL, "
         f"cur_base_minor = 0, cur_interest_due_minor = 0, cur_recognized_minor = 0 "
         f"WHERE {charge_off}"),
        ("inactive", "UPDATE loans SET last_closed_day = :d WHERE status IN ('closed', "
         f"'charged_off') AND last_closed_day = :prev AND {CHUNK}"),
    ]


@dataclass
class ChunkResult:
    """What one chunk did."""

    loans: int = 0
    journal_entries: int = 0


@lru_cache(maxsize=8)
def statements_for(dialect: str, buckets: tuple[Bucket, ...]) -> tuple[tuple[str, str], ...]:
    """The statements as the dialect wants them.

    SQLite gets unary-plus index hints. PostgreSQL gets the accrual update and its journal
    rows as one statement (``WITH … UPDATE … RETURNING`` feeding the INSERT), so the million
    freshly updated rows are not scanned a second time.
    """
    statements = _statements(buckets)
    if dialect == "sqlite":
        return tuple(statements)
    plain = [(name, sql.replace("+status", "status").replace("+id BETWEEN", "id BETWEEN")
              .replace("+loans.id", "loans.id")) for name, sql in statements]
    merged: list[tuple[str, str]] = []
    for name, sql in plain:
        if name == "interest":
            merged.append(("interest+journal", f"WITH accrued AS ({sql} RETURNING id, "
                           "accrued_today_minor, penalty_today_minor), posted AS ("
                           f"{JOURNAL} SELECT :d, id, 'accrual', '1110', '4000', "
                           "accrued_today_minor FROM accrued WHERE accrued_today_minor > 0 "
                           f"RETURNING 1), penalised AS ({JOURNAL} SELECT :d, id, 'penalty', "
                           "'1130', '4020', penalty_today_minor FROM accrued WHERE "
                           "penalty_today_minor > 0 RETURNING 1) SELECT "
                           "(SELECT count(*) FROM accrued), (SELECT count(*) FROM posted) + "
                           "(SELECT count(*) FROM penalised)"))
        elif name not in ("interest:journal", "penalty:journal"):
            merged.append((name, sql))
    return tuple(merged)


def close_chunk(
    connection: Connection, on: date, lo: int, hi: int, buckets: tuple[Bucket, ...],
    charge_off_min: int = 0,
) -> ChunkResult:
    """Run every close-of-business step for loans with ids in [lo, hi]."""
    d = day_number(on)
    params = {"d": d, "prev": d - 1, "lo": lo, "hi": hi, "date": on,
              "charge_off_min": charge_off_min}
    result = ChunkResult()
    for name, sql in statements_for(connection.dialect.name, buckets):
        outcome = connection.execute(text(sql), params)
        if name == "interest+journal":
            loans, entries = outcome.one()
            result.loans += int(loans)
            result.journal_entries += int(entries)
        elif name.endswith(":journal"):
            result.journal_entries += outcome.rowcount
        elif name == "interest":
            result.loans += outcome.rowcount
    return result


def smallest_charge_off_days(connection: Connection) -> int:
    """The smallest charge-off threshold of any loan's rules (rules are few and shared)."""
    values = [json.loads(text_)["charge_off_days"] for text_ in connection.execute(
        text("SELECT rules FROM servicing_rules")).scalars()]
    return min(values, default=0)


def pending_id_range(connection: Connection, on: date) -> tuple[int, int] | None:
    """The id range of loans whose close of business for ``on`` has not run yet."""
    row = connection.execute(
        text("SELECT MIN(id), MAX(id) FROM loans WHERE last_closed_day = :prev"),
        {"prev": day_number(on) - 1},
    ).one()
    return None if row[0] is None else (int(row[0]), int(row[1]))


def close_business_day(
    engine: Engine,
    on: date,
    chunk_size: int,
    buckets: tuple[Bucket, ...] = DEFAULT_BUCKETS,
    progress: Callable[[int], None] | None = None,
    after_chunk: Callable[[int], None] | None = None,
) -> ChunkResult:
    """Close ``on`` for every loan, one transaction per chunk of ids."""
    total = ChunkResult()
    with engine.connect() as connection:
        bounds = pending_id_range(connection, on)
        charge_off_min = smallest_charge_off_days(connection)
    if bounds is None:
        return total
    for lo in range(bounds[0], bounds[1] + 1, chunk_size):
        hi = min(lo + chunk_size - 1, bounds[1])
        with engine.begin() as connection:
            chunk = close_chunk(connection, on, lo, hi, buckets, charge_off_min)
        total.loans += chunk.loans
        total.journal_entries += chunk.journal_entries
        if progress is not None:
            progress(hi - lo + 1)
        if after_chunk is not None:
            after_chunk(hi)
    return total
