"""Versions carry their canonical link and normalized title, indexed, so a new version of
another source finds the item it joins (issue 15).

Existing items keep their keys, ids and versions: an entry a reader has seen keeps its
Atom id, and none is removed. Only the versions stored before gain the two columns, so
the stories they carry are joined by what other sources bring from now on.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_BATCH = 1000


def upgrade() -> None:
    from aggregator.canonical import canonical_link, permalink
    from aggregator.similar import normalized_title

    op.add_column("item_versions", sa.Column("canon", sa.Text()))
    op.add_column("item_versions", sa.Column("title_norm", sa.Text()))
    op.add_column("item_versions", sa.Column("merged_by", sa.String(64)))
    conn = op.get_bind()
    versions = sa.table(
        "item_versions",
        sa.column("source_id"),
        sa.column("key"),
        sa.column("link"),
        sa.column("guid"),
        sa.column("title"),
        sa.column("infocode"),
        sa.column("canon"),
        sa.column("title_norm"),
    )
    rows = conn.execute(
        sa.select(
            versions.c.source_id, versions.c.key, versions.c.link, versions.c.guid, versions.c.title
        )
    ).all()
    fill = (
        sa.update(versions)
        .where(
            versions.c.source_id == sa.bindparam("b_source"),
            versions.c.key == sa.bindparam("b_key"),
        )
        .values(canon=sa.bindparam("b_canon"), title_norm=sa.bindparam("b_title"))
    )
    values = [
        {
            "b_source": r.source_id,
            "b_key": r.key,
            "b_canon": canonical_link(r.link or permalink(r.guid)),
            "b_title": normalized_title(r.title),
        }
        for r in rows
    ]
    for start in range(0, len(values), _BATCH):
        conn.execute(fill, values[start : start + _BATCH])
    op.create_index("ix_item_versions_canon", "item_versions", ["canon"])
    op.create_index(
        "ix_item_versions_title_norm_published", "item_versions", ["title_norm", "published"]
    )


def downgrade() -> None:
    op.drop_index("ix_item_versions_title_norm_published", "item_versions")
    op.drop_index("ix_item_versions_canon", "item_versions")
    for column in ("merged_by", "title_norm", "canon"):
        op.execute(f"ALTER TABLE item_versions DROP COLUMN {column}")
