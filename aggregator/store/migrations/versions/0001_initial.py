"""Initial schema: sources, categories, items and their versions, tombstones, change counters.

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from aggregator.store.schema import IdList, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "sources",
        sa.Column("id", sa.String(100), nullable=False),
        sa.Column("configured_url", sa.Text(), nullable=False, server_default=""),
        sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("url", sa.Text()),
        sa.Column("etag", sa.Text()),
        sa.Column("last_modified", sa.Text()),
        sa.Column("validators_url", sa.Text()),
        sa.Column("last_poll_at", UTCDateTime()),
        sa.Column("last_success_at", UTCDateTime()),
        sa.Column("status", sa.String(16), nullable=False, server_default="never"),
        sa.Column("error_kind", sa.String(64)),
        sa.Column("error_message", sa.Text()),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_due_at", UTCDateTime()),
        sa.Column("item_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("disabled_reason", sa.Text()),
        sa.Column("redirect_url", sa.Text()),
        sa.Column("redirect_seen", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("lease_owner", sa.String(200)),
        sa.Column("lease_expires_at", UTCDateTime()),
        sa.PrimaryKeyConstraint("id", name="pk_sources"),
    )
    op.create_index("ix_sources_next_due_at", "sources", ["next_due_at"])

    op.create_table(
        "categories",
        sa.Column("id", sa.String(100), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("description", sa.Text()),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("publisher", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("position", sa.Integer()),
        sa.PrimaryKeyConstraint("id", name="pk_categories"),
    )

    op.create_table(
        "items",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("infocode", sa.String(64)),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("link", sa.Text()),
        sa.Column("content_html", sa.Text()),
        sa.Column("content_raw", sa.Text()),
        sa.Column("summary_html", sa.Text()),
        sa.Column("author", sa.Text()),
        sa.Column("published", UTCDateTime(), nullable=False),
        sa.Column("updated", UTCDateTime(), nullable=False),
        sa.Column("first_seen", UTCDateTime(), nullable=False),
        sa.Column("content_hash", sa.Text(), nullable=False),
        sa.Column("post_category", sa.String(100)),
        sa.PrimaryKeyConstraint("id", name="pk_items"),
        sa.UniqueConstraint("key", name="uq_items_key"),
    )
    op.create_index("ix_items_newest", "items", [sa.text("published DESC"), "key"])

    op.create_table(
        "item_versions",
        sa.Column("source_id", sa.String(100), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("item_id", Id, nullable=False),
        sa.Column("guid", sa.Text()),
        sa.Column("link", sa.Text()),
        sa.Column("infocode", sa.String(64)),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("content_raw", sa.Text()),
        sa.Column("content_html", sa.Text()),
        sa.Column("summary_html", sa.Text()),
        sa.Column("author", sa.Text()),
        sa.Column("published", UTCDateTime()),
        sa.Column("updated", UTCDateTime()),
        sa.Column("priority", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("categories", IdList(), nullable=False),
        sa.Column("content_hash", sa.Text(), nullable=False),
        sa.Column("detail_url", sa.Text()),
        sa.Column("detail_pending", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("first_seen", UTCDateTime(), nullable=False),
        sa.Column("last_seen", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("source_id", "key", name="pk_item_versions"),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["sources.id"],
            name="fk_item_versions_source_id_sources",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["item_id"], ["items.id"], name="fk_item_versions_item_id_items", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_item_versions_item_id", "item_versions", ["item_id"])

    op.create_table(
        "item_categories",
        sa.Column("item_id", Id, nullable=False),
        sa.Column("category_id", sa.String(100), nullable=False),
        sa.Column("published", UTCDateTime(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("item_id", "category_id", name="pk_item_categories"),
        sa.ForeignKeyConstraint(
            ["item_id"], ["items.id"], name="fk_item_categories_item_id_items", ondelete="CASCADE"
        ),
    )
    op.create_index(
        "ix_item_categories_newest",
        "item_categories",
        ["category_id", sa.text("published DESC"), "key"],
    )

    op.create_table(
        "tombstones",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("pruned_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_tombstones"),
    )

    op.create_table(
        "meta",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_meta"),
    )
    op.execute("INSERT INTO meta (name, value) VALUES ('changes', 0)")

    op.create_table(
        "category_changes",
        sa.Column("category_id", sa.String(100), nullable=False),
        sa.Column("counter", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("category_id", name="pk_category_changes"),
    )


def downgrade() -> None:
    for table in (
        "category_changes",
        "meta",
        "tombstones",
        "item_categories",
        "item_versions",
        "items",
        "categories",
        "sources",
    ):
        op.drop_table(table)
