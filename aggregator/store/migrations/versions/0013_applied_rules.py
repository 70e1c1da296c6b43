"""The rules the stored items were last evaluated with, each as it was written, so a
re-application after an edit evaluates only the items the changed rules could act on.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "applied_rules",
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("position", name="pk_applied_rules"),
    )


def downgrade() -> None:
    op.drop_table("applied_rules")
