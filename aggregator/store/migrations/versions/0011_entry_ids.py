"""Each item's Atom uuid stored and indexed, so ``aggregator explain urn:uuid:…`` is one
lookup (uuid5 is one-way); ``item_aliases`` keeps the ids of items merged into another;
and the stories stored twice before 0010 are marked to be merged once (issue 15).

The merge itself is not done here: it re-merges items with the config's rules, which a
migration does not have. ``meta`` row ``merge_duplicates`` = 1 asks the first poll (or
run, build, refetch) to do it (store/duplicates.py), in one transaction, and clear it.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_BATCH = 1000


def upgrade() -> None:
    op.add_column("items", sa.Column("uuid", sa.String(36)))
    conn = op.get_bind()
    items = sa.table("items", sa.column("id"), sa.column("key"), sa.column("uuid"))
    fill = (
        sa.update(items)
        .where(items.c.id == sa.bindparam("b_id"))
        .values(uuid=sa.bindparam("b_uuid"))
    )
    values = [
        {"b_id": row.id, "b_uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, row.key))}
        for row in conn.execute(sa.select(items.c.id, items.c.key))
    ]
    for start in range(0, len(values), _BATCH):
        conn.execute(fill, values[start : start + _BATCH])
    op.create_index("ix_items_uuid", "items", ["uuid"])
    op.create_table(
        "item_aliases",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("uuid", sa.String(36), nullable=False),
        sa.Column("item_id", Id, nullable=False),
        sa.Column("changed", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["items.id"],
            name="fk_item_aliases_item_id_items",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("key", name="pk_item_aliases"),
    )
    op.create_index("ix_item_aliases_uuid", "item_aliases", ["uuid"])
    op.create_index("ix_item_aliases_item_id", "item_aliases", ["item_id"])
    op.create_index("ix_item_aliases_changed", "item_aliases", ["changed"])
    meta = sa.table("meta", sa.column("name"), sa.column("value"))
    conn.execute(sa.insert(meta).values(name="merge_duplicates", value=1))


def downgrade() -> None:
    op.execute("DELETE FROM meta WHERE name = 'merge_duplicates'")
    op.drop_table("item_aliases")
    op.drop_index("ix_items_uuid", "items")
    op.drop_column("items", "uuid")
