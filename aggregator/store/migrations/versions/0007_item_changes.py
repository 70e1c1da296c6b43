"""Items remember the change counter of their last change, so posts follow exactly them.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("items", sa.Column("changed", sa.BigInteger()))
    op.create_index("ix_items_changed", "items", ["changed"])


def downgrade() -> None:
    op.drop_index("ix_items_changed", "items")
    # not batch_alter_table: on SQLite it copies ``items`` and drops the old one, and the
    # drop's ON DELETE CASCADE would empty item_categories and item_versions
    op.execute("ALTER TABLE items DROP COLUMN changed")
