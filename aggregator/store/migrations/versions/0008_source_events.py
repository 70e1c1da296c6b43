"""Source health events (health.atom), each source's last reported condition, and the
indexes for the usual gap between a source's arrivals and the new-items charts.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from aggregator.store.schema import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column(
        "sources", sa.Column("health", sa.String(16), nullable=False, server_default="ok")
    )
    op.create_table(
        "source_events",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("source_id", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_source_events"),
    )
    op.create_index("ix_source_events_at", "source_events", ["at"])
    op.create_index("ix_item_versions_arrivals", "item_versions", ["source_id", "first_seen"])
    op.create_index("ix_items_first_seen", "items", ["first_seen"])


def downgrade() -> None:
    op.drop_index("ix_items_first_seen", "items")
    op.drop_index("ix_item_versions_arrivals", "item_versions")
    op.drop_table("source_events")
    # not batch_alter_table: on SQLite it would copy and drop ``sources``, whose
    # ON DELETE CASCADE would take every item version with it (SQLite 3.35+ drops columns)
    op.drop_column("sources", "health")
