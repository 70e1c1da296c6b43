"""Items and their versions keep their enclosures (issue 13: podcasts lost their audio).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # JSON text ([[url, type, length], ...]); NULL: none. Stored items gain them at their
    # next change: the hashes leave an empty list out, so nothing is rewritten for this.
    op.add_column("items", sa.Column("enclosures", sa.Text()))
    op.add_column("item_versions", sa.Column("enclosures", sa.Text()))


def downgrade() -> None:
    # not batch_alter_table: on SQLite it copies and drops the table, and dropping ``items``
    # cascades to every version and category link (SQLite 3.35+ drops columns itself)
    op.drop_column("item_versions", "enclosures")
    op.drop_column("items", "enclosures")
