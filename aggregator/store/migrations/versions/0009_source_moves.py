"""Sources remember whether the config still names them, and the id their items were keyed by.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "sources", sa.Column("removed", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.add_column("sources", sa.Column("key_id", sa.String(100)))


def downgrade() -> None:
    # not batch_alter_table: on SQLite it copies ``sources`` and drops the old one, and the
    # drop's ON DELETE CASCADE would empty item_versions
    op.execute("ALTER TABLE sources DROP COLUMN key_id")
    op.execute("ALTER TABLE sources DROP COLUMN removed")
