"""Rules: a merged item may be dropped, and keeps its title from before a retitle.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "items", sa.Column("dropped", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.add_column("items", sa.Column("base_title", sa.Text()))


def downgrade() -> None:
    # plain DROP COLUMN (SQLite 3.35+): batch mode would copy ``items`` and drop the old
    # table, and with foreign keys on that cascades into item_versions and item_categories
    op.execute("DELETE FROM meta WHERE name = 'rules'")
    op.drop_column("items", "base_title")
    op.drop_column("items", "dropped")
