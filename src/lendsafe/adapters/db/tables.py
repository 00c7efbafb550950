"""The database schema (SQLAlchemy Core). Amounts are BIGINT minor units; never floats.

Loans carry denormalised *servicing columns* (the accrual cursor, receivable balances,
arrears, days past due) so that close of business runs as a few set-based statements over
the loans table; the Python servicing path keeps the same columns exact (see
``lendsafe.domain.lending.loan`` for the definitions both follow).
"""

from __future__ import annotations

from sqlalchemy import (
    DDL,
    BigInteger,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    event,
)

metadata = MetaData()
#: Surrogate keys: 64-bit on PostgreSQL, SQLite's INTEGER PRIMARY KEY (the rowid) there.
ID = BigInteger().with_variant(Integer, "sqlite")

business_calendar = Table(
    "business_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("open_date", Date, nullable=False),
    Column("eod_running_for", Date, nullable=True),
)

jurisdictions = Table(
    "jurisdictions",
    metadata,
    Column("code", String(8), primary_key=True),
    Column("definition", Text, nullable=False),  # canonical JSON of the jurisdiction's rules
    Column("created_at", DateTime(timezone=True), nullable=False),
)

products = Table(
    "products",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("type", String(32), nullable=False),
    Column("definition", Text, nullable=False),  # canonical JSON of the product data
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# one row (id 1): bumped in the transaction of every approved product or jurisdiction change,
# so a process that keeps the catalogue in memory (a decision server) reads one integer to
# know whether another process has changed it
catalogue_state = Table(
    "catalogue_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", BigInteger, nullable=False),
)

borrowers = Table(
    "borrowers",
    metadata,
    Column("id", ID, primary_key=True),
    Column("external_ref", String(64), nullable=False, unique=True),
    Column("region", String(32), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

servicing_rules = Table(
    "servicing_rules",
    metadata,
    Column("id", ID, primary_key=True),
    Column("digest", String(64), nullable=False, unique=True),  # SHA-256 of the JSON
    Column("rules", Text, nullable=False),  # servicing rules JSON, shared by many loans
)

loans = Table(
    "loans",
    metadata,
    Column("id", ID, primary_key=True),
    Column("borrower_id", ForeignKey("borrowers.id"), nullable=False),
    Column("product_id", ForeignKey("products.id"), nullable=False),
    # the approved credit application the loan was booked on (one loan per application)
    Column("application_id", String(64), nullable=True, unique=True),
    Column("term", String(8), nullable=True),  # as booked ("14d", "12m"); replay rebuilds it
    # the product's schedule-shaping fields as booked (canonical JSON: rate basis, fee mode,
    # calendar, rolling), so a replay does not depend on the product as it is today
    Column("booking_terms", Text, nullable=True),
    Column("currency", String(3), nullable=False),
    Column("type", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("rules_id", ForeignKey("servicing_rules.id"), nullable=False),  # kept for life
    Column("principal_minor", BigInteger, nullable=False),
    Column("disbursed_minor", BigInteger, nullable=False),
    Column("upfront_fee_minor", BigInteger, nullable=False),
    Column("annual_rate_disclosed", String(24), nullable=False),
    Column("disbursed_on", Date, nullable=False),
    Column("maturity_date", Date, nullable=False),
    Column("closed_on", Date, nullable=True),
    Column("charged_off_on", Date, nullable=True),
    # servicing columns read and written by set-based close of business
    Column("last_closed_day", Integer, nullable=False),
    Column("penalty_rate_ppm", BigInteger, nullable=False),
    Column("grace_days", Integer, nullable=False),
    Column("charge_off_days", Integer, nullable=False),
    Column("cur_seq", Integer, nullable=True),
    Column("cur_start_day", Integer, nullable=True),
    Column("cur_due_day", Integer, nullable=True),
    Column("cur_base_minor", BigInteger, nullable=False, default=0),
    Column("cur_interest_due_minor", BigInteger, nullable=False, default=0),
    Column("cur_recognized_minor", BigInteger, nullable=False, default=0),
    Column("accrued_today_minor", BigInteger, nullable=False, default=0),  # last close's accrual
    Column("penalty_today_minor", BigInteger, nullable=False, default=0),  # last close's penalty
    Column("principal_outstanding_minor", BigInteger, nullable=False),
    Column("interest_receivable_minor", BigInteger, nullable=False, default=0),
    Column("fee_receivable_minor", BigInteger, nullable=False, default=0),
    Column("penalty_recognized_minor", BigInteger, nullable=False, default=0),
    Column("penalty_paid_minor", BigInteger, nullable=False, default=0),
    Column("arrears_minor", BigInteger, nullable=False, default=0),
    Column("oldest_unpaid_due_day", Integer, nullable=True),
    Column("days_past_due", Integer, nullable=False, default=0),
    Column("bucket", String(16), nullable=False, default="current"),
    Column("excess_minor", BigInteger, nullable=False, default=0),
    Column("recovered_minor", BigInteger, nullable=False, default=0),
    # relief window (mass relief): no penalty, days past due frozen on these days
    Column("relief_from_day", Integer, nullable=True),
    Column("relief_until_day", Integer, nullable=True),
    Column("version", Integer, nullable=False, default=1),
)
# PostgreSQL: room on every page so the daily accrual update stays heap-only (HOT)
event.listen(loans, "after_create",
             DDL("ALTER TABLE loans SET (fillfactor = 70)")  # type: ignore[no-untyped-call]
             .execute_if(dialect="postgresql"))
Index("ix_loans_borrower", loans.c.borrower_id)
# Every index on loans is written again whenever an update moves an indexed column (a relief
# deferral moves cur_due_day): no index on status (every statement that filters on it also
# has a key range or a borrower), and charged-off days indexed only where there is one.
Index("ix_loans_charged_off_on", loans.c.charged_off_on,
      postgresql_where=loans.c.charged_off_on.isnot(None),
      sqlite_where=loans.c.charged_off_on.isnot(None))
# close of business finds the few loans with something to do through these (never a scan);
# the columns the daily accrual writes are not indexed, so on PostgreSQL it stays HOT
Index("ix_loans_cur_due_day", loans.c.cur_due_day)
Index("ix_loans_oldest_unpaid_due_day", loans.c.oldest_unpaid_due_day)

installments = Table(
    "installments",
    metadata,
    Column("loan_id", ForeignKey("loans.id"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("period_start", Date, nullable=False),
    Column("due_date", Date, nullable=False),
    Column("start_day", Integer, nullable=False),
    Column("due_day", Integer, nullable=False),
    Column("principal_due_minor", BigInteger, nullable=False),
    Column("interest_due_minor", BigInteger, nullable=False),
    Column("fee_due_minor", BigInteger, nullable=False),
    Column("principal_paid_minor", BigInteger, nullable=False, default=0),
    Column("interest_paid_minor", BigInteger, nullable=False, default=0),
    Column("fee_paid_minor", BigInteger, nullable=False, default=0),
    Column("interest_recognized_minor", BigInteger, nullable=False, default=0),
    Column("fee_recognized_minor", BigInteger, nullable=False, default=0),
)

# PostgreSQL: half of every page free, so the set-based updates of instalments (a relief
# deferral moving their dates, close of business recognising interest) are heap-only (HOT):
# only the primary key indexes them. (A payment rewrites its loan's rows instead.)
event.listen(installments, "after_create",
             DDL("ALTER TABLE installments SET (fillfactor = 50)")  # type: ignore[no-untyped-call]
             .execute_if(dialect="postgresql"))

payments = Table(
    "payments",
    metadata,
    Column("id", ID, primary_key=True),
    Column("loan_id", ForeignKey("loans.id"), nullable=False),
    Column("idempotency_key", String(128), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("received_on", Date, nullable=False),
    Column("principal_minor", BigInteger, nullable=False),
    Column("interest_minor", BigInteger, nullable=False),
    Column("fee_minor", BigInteger, nullable=False),
    Column("penalty_minor", BigInteger, nullable=False),
    Column("excess_minor", BigInteger, nullable=False),
    Column("recovery_minor", BigInteger, nullable=False),
    Column("response", Text, nullable=False),  # the first answer, returned to retries
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("idempotency_key", name="uq_payments_idempotency_key"),
)
Index("ix_payments_loan", payments.c.loan_id)

journal = Table(
    "journal_entries",
    metadata,
    Column("id", ID, primary_key=True),
    Column("business_day", Integer, nullable=False),
    Column("loan_id", BigInteger, nullable=True),
    Column("kind", String(24), nullable=False),
    Column("debit_account", String(8), nullable=False),
    Column("credit_account", String(8), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("reference", String(64), nullable=True),
)
Index("ix_journal_loan", journal.c.loan_id)

eod_runs = Table(
    "eod_runs",
    metadata,
    Column("business_date", Date, primary_key=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("loans_processed", BigInteger, nullable=False, default=0),
    Column("journal_entries", BigInteger, nullable=False, default=0),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", ID, primary_key=True),
    Column("key_hash", String(64), nullable=False, unique=True),  # SHA-256 of the secret
    Column("role", String(32), nullable=False),
    Column("borrower_id", ForeignKey("borrowers.id"), nullable=True),
    Column("label", String(64), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)
