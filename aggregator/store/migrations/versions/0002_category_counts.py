"""Categories keep their entry count and newest ``updated`` (counts.py maintains them).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from aggregator.store.schema import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "categories", sa.Column("entry_count", sa.Integer(), nullable=False, server_default="0")
    )
    op.add_column("categories", sa.Column("updated", UTCDateTime()))
    # plain SQL, not counts.recount: a migration must not change with the code after it
    op.execute(
        "UPDATE categories SET"
        " entry_count = (SELECT count(*) FROM item_categories ic"
        " WHERE ic.category_id = categories.id),"
        " updated = (SELECT max(i.updated) FROM item_categories ic"
        " JOIN items i ON i.id = ic.item_id WHERE ic.category_id = categories.id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("categories") as batch:
        batch.drop_column("updated")
        batch.drop_column("entry_count")
