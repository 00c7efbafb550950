"""Tables of the verifiable log: leaves, state (frontier), gaps, tree heads, ledger identity.

Append-only on PostgreSQL: :func:`append_only` attaches triggers (created with the table, by
DDL events, PostgreSQL only) that refuse UPDATE, DELETE and TRUNCATE on the journal, the
audit records, the leaves, the heads and the ledger identity. ``ledger_state`` and
``ledger_gaps`` are working state (the frontier moves forward) and stay writable; everything
they hold is recomputed and checked by ``lendsafe ledger verify``.

The ledger id is random per database and created once, with the table (``ledger_meta``).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from sqlalchemy import (
    DDL,
    BigInteger,
    Column,
    Connection,
    Integer,
    LargeBinary,
    String,
    Table,
    UniqueConstraint,
    event,
    insert,
)

from lendsafe.adapters.db.tables import ID, journal, metadata

# a DDL() statement is %-formatted by SQLAlchemy, hence the doubled %% (PL/pgSQL sees %)
_REFUSE_FUNCTION = """
CREATE OR REPLACE FUNCTION lendsafe_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'lendsafe: %% on %% is refused: the table is append-only', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END $$
"""

ledger_meta = Table(
    "ledger_meta",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("ledger_id", String(64), nullable=False, unique=True),
    Column("created_micros", BigInteger, nullable=False),
)

ledger_state = Table(
    "ledger_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("frontier", LargeBinary, nullable=False),
    Column("journal_watermark", BigInteger, nullable=False),
    Column("audit_watermark", BigInteger, nullable=False),
)

ledger_leaves = Table(
    "ledger_leaves",
    metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", String(8), nullable=False),
    Column("ref_id", BigInteger, nullable=False),
    Column("leaf_hash", LargeBinary(32), nullable=False),
    UniqueConstraint("kind", "ref_id", name="uq_ledger_leaves_ref"),
)

ledger_gaps = Table(
    "ledger_gaps",
    metadata,
    Column("kind", String(8), primary_key=True),
    Column("ref_id", BigInteger, primary_key=True, autoincrement=False),
)

ledger_heads = Table(
    "ledger_heads",
    metadata,
    Column("id", ID, primary_key=True),
    Column("kind", String(12), nullable=False),  # "signed" | "checkpoint"
    Column("size", BigInteger, nullable=False),
    Column("root", LargeBinary(32), nullable=False),
    Column("issued_micros", BigInteger, nullable=False),
    Column("signature", LargeBinary(64), nullable=True),
    Column("key_id", String(32), nullable=True),
)


def append_only(table: Table) -> None:
    """On PostgreSQL, refuse UPDATE, DELETE and TRUNCATE on ``table`` (triggers with the table)."""
    name = table.name
    statements = [
        _REFUSE_FUNCTION,
        f"CREATE TRIGGER {name}_no_change BEFORE UPDATE OR DELETE ON {name} "
        "FOR EACH ROW EXECUTE FUNCTION lendsafe_refuse_change()",
        f"CREATE TRIGGER {name}_no_truncate BEFORE TRUNCATE ON {name} "
        "FOR EACH STATEMENT EXECUTE FUNCTION lendsafe_refuse_change()",
    ]
    for sql in statements:
        ddl = DDL(sql)  # type: ignore[no-untyped-call]
        event.listen(table, "after_create", ddl.execute_if(dialect="postgresql"))


def _seed_ledger(target: Table, connection: Connection, **_kw: Any) -> None:
    """Create the ledger identity and the empty log state, once, with the tables."""
    from lendsafe.domain.ledger.merkle import MerkleFrontier

    if target is ledger_meta:
        connection.execute(insert(ledger_meta).values(
            id=1, ledger_id=uuid.uuid4().hex, created_micros=time.time_ns() // 1000))
    else:
        connection.execute(insert(ledger_state).values(
            id=1, size=0, frontier=MerkleFrontier().to_bytes(), journal_watermark=0,
            audit_watermark=0))


event.listen(ledger_meta, "after_create", _seed_ledger)
event.listen(ledger_state, "after_create", _seed_ledger)
for _table in (journal, ledger_leaves, ledger_heads, ledger_meta):
    append_only(_table)

APPEND_ONLY_TABLES = ("journal_entries", "audit_records", "ledger_leaves", "ledger_heads",
                      "ledger_meta")

ledger_verifications = Table(
    "ledger_verifications",
    metadata,
    Column("id", ID, primary_key=True),
    Column("at_micros", BigInteger, nullable=False),
    Column("ok", Integer, nullable=False),
    Column("entries", BigInteger, nullable=False),
    Column("report", String(4000), nullable=False),  # JSON summary, first bad entry
)
