"""Tables of flexible repayment: restructurings, schedule history, hardship requests,
credit-reporting flags, relief events and the loans each event covers."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from lendsafe.adapters.db.tables import ID, metadata

restructures = Table(
    "restructures",
    metadata,
    Column("id", ID, primary_key=True),
    Column("loan_id", ForeignKey("loans.id"), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("request", Text, nullable=False),  # canonical JSON of the change request
    Column("status", String(16), nullable=False),  # applied | pending | rejected
    Column("business_day", Integer, nullable=False),
    Column("maker", String(128), nullable=False),
    Column("checker", String(128), nullable=True),
    Column("action_id", BigInteger, nullable=True),  # maker-checker action, when approved
    Column("annual_rate_before", String(24), nullable=True),
    Column("annual_rate_after", String(24), nullable=True),
    Column("preview", Text, nullable=True),  # JSON: old and new schedule and disclosures
    Column("created_micros", BigInteger, nullable=False),
)
Index("ix_restructures_loan", restructures.c.loan_id)

schedule_versions = Table(
    "schedule_versions",
    metadata,
    Column("id", ID, primary_key=True),
    Column("loan_id", BigInteger, nullable=False),
    Column("replaced_by", String(64), nullable=False),  # restructure:ID | relief:EVENT_ID
    Column("business_day", Integer, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("period_start", Date, nullable=False),
    Column("due_date", Date, nullable=False),
    Column("principal_due_minor", BigInteger, nullable=False),
    Column("interest_due_minor", BigInteger, nullable=False),
    Column("fee_due_minor", BigInteger, nullable=False),
    Column("principal_paid_minor", BigInteger, nullable=False),
    Column("interest_paid_minor", BigInteger, nullable=False),
    Column("fee_paid_minor", BigInteger, nullable=False),
    Column("interest_recognized_minor", BigInteger, nullable=False),
    Column("fee_recognized_minor", BigInteger, nullable=False),
)
Index("ix_schedule_versions_loan", schedule_versions.c.loan_id, schedule_versions.c.replaced_by)

hardship_requests = Table(
    "hardship_requests",
    metadata,
    Column("id", ID, primary_key=True),
    Column("loan_id", ForeignKey("loans.id"), nullable=False),
    Column("borrower_id", BigInteger, nullable=False),
    Column("reason", Text, nullable=False),
    Column("status", String(16), nullable=False),  # open | handled | declined
    Column("business_day", Integer, nullable=False),
    Column("restructure_id", BigInteger, nullable=True),
    Column("created_micros", BigInteger, nullable=False),
)
Index("ix_hardship_status", hardship_requests.c.status)

credit_flags = Table(
    "credit_reporting_flags",
    metadata,
    Column("id", ID, primary_key=True),
    Column("loan_id", BigInteger, nullable=False),
    Column("flag", String(16), nullable=False),  # forbearance | relief
    Column("from_day", Integer, nullable=False),
    Column("until_day", Integer, nullable=True),
    Column("suppress_negative", Integer, nullable=False, default=0),
    Column("source", String(64), nullable=False),  # restructure:ID | relief:EVENT_ID
)
Index("ix_credit_flags_loan", credit_flags.c.loan_id)

relief_events = Table(
    "relief_events",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("definition", Text, nullable=False),  # canonical JSON of the declared event
    Column("starts_day", Integer, nullable=False),
    Column("ends_day", Integer, nullable=False),
    Column("declared_by", String(128), nullable=False),
    Column("declared_micros", BigInteger, nullable=False),
)

relief_applications = Table(
    "relief_applications",
    metadata,
    Column("event_id", BigInteger, primary_key=True),  # relief_events.id (no FK: bulk path)
    Column("loan_id", BigInteger, primary_key=True),
    Column("status", String(16), nullable=False),  # applied | offered | accepted
    Column("applied_day", Integer, nullable=False),
    Column("principal_minor", BigInteger, nullable=False),
    Column("arrears_minor", BigInteger, nullable=False),
    Column("days_past_due", Integer, nullable=False),
    Column("bucket", String(16), nullable=False),
    Column("deferral_days", Integer, nullable=False),
)
