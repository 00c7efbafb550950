"""Tables of internal control: audit records, staff users and roles, sessions, login
throttling, borrower one-time codes, pending (maker-checker) actions and encrypted PII.

``audit_records`` is append-only (PostgreSQL triggers, see ``ledger_tables.append_only``)
and sealed into the verifiable log with the journal.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from lendsafe.adapters.db.ledger_tables import append_only
from lendsafe.adapters.db.tables import ID, metadata

audit_records = Table(
    "audit_records",
    metadata,
    Column("id", ID, primary_key=True),
    Column("at_micros", BigInteger, nullable=False),
    Column("business_day", Integer, nullable=True),
    Column("actor", String(128), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(128), nullable=True),
    Column("before", Text, nullable=True),
    Column("after", Text, nullable=True),
    Column("reason", Text, nullable=True),
)
Index("ix_audit_at", audit_records.c.at_micros)
Index("ix_audit_action", audit_records.c.action, audit_records.c.at_micros)
append_only(audit_records)

users = Table(
    "users",
    metadata,
    Column("id", ID, primary_key=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("password_hash", String(256), nullable=True),
    Column("totp_secret", LargeBinary, nullable=True),  # encrypted with the PII key ring
    Column("totp_kid", String(32), nullable=True),
    Column("created_micros", BigInteger, nullable=False),
    Column("disabled_micros", BigInteger, nullable=True),
)

user_roles = Table(
    "user_roles",
    metadata,
    Column("user_id", ForeignKey("users.id"), primary_key=True),
    Column("role", String(32), primary_key=True),
    Column("granted_by", String(128), nullable=False),
    Column("granted_micros", BigInteger, nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("subject", String(128), nullable=False),
    Column("created_micros", BigInteger, nullable=False),
    Column("expires_micros", BigInteger, nullable=False),
    Column("revoked_micros", BigInteger, nullable=True),
)

login_throttle = Table(
    "login_throttle",
    metadata,
    Column("key", String(160), primary_key=True),  # "user:alice" or "ip:203.0.113.7"
    Column("failures", Integer, nullable=False),
    Column("last_failure_micros", BigInteger, nullable=False),
    Column("locked_until_micros", BigInteger, nullable=False),
)

otp_challenges = Table(
    "otp_challenges",
    metadata,
    Column("id", ID, primary_key=True),
    Column("phone_index", String(64), nullable=False),
    Column("borrower_id", ForeignKey("borrowers.id"), nullable=True),
    Column("code_hash", String(64), nullable=False),
    Column("created_micros", BigInteger, nullable=False),
    Column("expires_micros", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("used_micros", BigInteger, nullable=True),
)
Index("ix_otp_phone", otp_challenges.c.phone_index, otp_challenges.c.created_micros)

pending_actions = Table(
    "pending_actions",
    metadata,
    Column("id", ID, primary_key=True),
    Column("kind", String(64), nullable=False),
    Column("target", String(128), nullable=False),
    Column("payload", Text, nullable=False),  # canonical JSON
    Column("maker", String(128), nullable=False),
    Column("reason", Text, nullable=False),
    Column("status", String(16), nullable=False),  # pending | approved | rejected
    Column("created_micros", BigInteger, nullable=False),
    Column("checker", String(128), nullable=True),
    Column("decided_micros", BigInteger, nullable=True),
    Column("decision_reason", Text, nullable=True),
    Column("result", Text, nullable=True),
)
Index("ix_pending_status", pending_actions.c.status, pending_actions.c.created_micros)

borrower_pii = Table(
    "borrower_pii",
    metadata,
    Column("borrower_id", ForeignKey("borrowers.id"), primary_key=True),
    Column("kek_id", String(32), nullable=False),
    Column("wrapped_key", LargeBinary, nullable=False),  # AES-GCM data key, wrapped
    Column("ciphertext", LargeBinary, nullable=False),  # AES-GCM over canonical JSON
    Column("phone_index", String(64), nullable=True),  # HMAC of the normalised phone
    Column("updated_micros", BigInteger, nullable=False),
    UniqueConstraint("phone_index", name="uq_borrower_pii_phone"),
)
