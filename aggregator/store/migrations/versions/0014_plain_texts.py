"""Each body's plain text kept beside it (``bodies.plain_text``), so re-applying rules on
``text`` to every stored item reads it instead of deriving it from the HTML (issue 16).

The text is what ``aggregator.rules.body_text`` makes of the sanitized body, else the
summary: a value the code derives, unlike the rest of a migration's data, so it is
derived here by that code. NULL means "not derived": readers derive it then, so a later
change of ``body_text`` needs only a migration that sets the column to NULL.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_BATCH = 2000
_BODIES = sa.table(
    "bodies",
    sa.column("hash", sa.LargeBinary),
    sa.column("content_html", sa.Text),
    sa.column("summary_html", sa.Text),
    sa.column("plain_text", sa.Text),
)


def upgrade() -> None:
    from aggregator.rules import body_text

    op.add_column("bodies", sa.Column("plain_text", sa.Text()))
    conn = op.get_bind()
    b = _BODIES.c
    fill = (
        sa.update(_BODIES)
        .where(b.hash == sa.bindparam("b_hash"))
        .values(plain_text=sa.bindparam("text"))
    )
    last = b""
    while True:
        rows = conn.execute(
            sa.select(b.hash, b.content_html, b.summary_html)
            .where(b.hash > last)
            .order_by(b.hash)
            .limit(_BATCH)
        ).all()
        if not rows:
            return
        last = rows[-1][0]
        derived = [{"b_hash": h, "text": body_text(html or summary)} for h, html, summary in rows]
        conn.execute(fill, derived)


def downgrade() -> None:
    op.drop_column("bodies", "plain_text")
