"""Tables of credit decisions: applications, the decision log, referrals, model roles, blocklist.

Amounts are BIGINT minor units; PD and rates are decimal strings. The decision log is written
in the same transaction as the application (and its referral), so a decision is either fully
recorded or not at all.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from lendsafe.adapters.db.tables import ID, metadata

applications = Table(
    "credit_applications",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("borrower_ref", String(64), nullable=True),
    Column("product_id", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("term", String(8), nullable=False),
    Column("inputs", Text, nullable=False),  # canonical JSON; identity fields only as hashes
    Column("inputs_sha256", String(64), nullable=False),
)

decision_log = Table(
    "decision_log",
    metadata,
    Column("id", ID, primary_key=True),
    Column("application_id", ForeignKey("credit_applications.id"), nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=False),
    Column("business_date", String(10), nullable=False),
    Column("decided_by", String(64), nullable=False),  # "champion" | "challenger" | underwriter
    Column("decision", String(16), nullable=False),
    Column("reasons", Text, nullable=False),  # JSON list of {code, text_en, text_zh, ...}
    Column("inputs_sha256", String(64), nullable=False),
    Column("pd", String(16), nullable=True),
    Column("score", Float, nullable=True),  # model output (not money)
    Column("limit_minor", BigInteger, nullable=False),
    Column("annual_rate_offered", String(16), nullable=True),
    Column("model_version", String(64), nullable=True),
    Column("challenger_version", String(64), nullable=True),
    Column("challenger_score", Float, nullable=True),
    Column("challenger_pd", String(16), nullable=True),
    Column("champion_version", String(64), nullable=True),
    Column("champion_score", Float, nullable=True),
    Column("policy_version", String(64), nullable=False),
    Column("characteristics", Text, nullable=False),  # model inputs (JSON), for monitoring
)
Index("ix_decision_log_application", decision_log.c.application_id)
Index("ix_decision_log_decided_at", decision_log.c.decided_at)

referrals = Table(
    "referrals",
    metadata,
    Column("id", ID, primary_key=True),
    Column("application_id", ForeignKey("credit_applications.id"), nullable=False, unique=True),
    Column("status", String(16), nullable=False),  # open | approved | declined
    Column("reasons", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("decided_by", String(64), nullable=True),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Column("note", Text, nullable=True),
)
Index("ix_referrals_status", referrals.c.status)

model_roles = Table(
    "model_roles",
    metadata,
    Column("role", String(16), primary_key=True),  # champion | challenger
    Column("model_id", String(64), nullable=False),
    Column("assigned_at", DateTime(timezone=True), nullable=False),
    Column("assigned_by", String(64), nullable=False),
)

blocklist = Table(
    "blocklist",
    metadata,
    Column("id", ID, primary_key=True),
    Column("kind", String(16), nullable=False),  # national_id | phone | device_id
    Column("value_sha256", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("kind", "value_sha256", name="uq_blocklist_value"),
)
