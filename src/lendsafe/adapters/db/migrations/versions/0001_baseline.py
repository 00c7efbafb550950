"""Baseline schema: every table registered in lendsafe.adapters.db.schema.

Until the first release this baseline is created from the table metadata; every schema
change after the first release adds a new revision with explicit operations.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from alembic import op

from lendsafe.adapters.db.schema import metadata

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create every table of the baseline."""
    metadata.create_all(bind=op.get_bind())


def downgrade() -> None:
    """Drop every table of the baseline."""
    metadata.drop_all(bind=op.get_bind())
