"""Merged items' hashes carried over to the one hash scheme (aggregator/digest.py).

The merged hash counted bytes with no field count; it is now the scheme of
the versions' hash. Each stored hash that the old scheme reproduces from the
row is replaced by the new scheme's value for the same fields, so no item
looks changed (and no entry's ``updated`` moves) after the upgrade. Both
schemes are written out here: a migration must not change with the code.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC

import sqlalchemy as sa
from alembic import op

from aggregator.store.schema import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_BATCH = 500
_ITEMS = sa.table(
    "items",
    sa.column("id", sa.BigInteger),
    sa.column("title", sa.Text),
    sa.column("link", sa.Text),
    sa.column("content_html", sa.Text),
    sa.column("content_raw", sa.Text),
    sa.column("summary_html", sa.Text),
    sa.column("author", sa.Text),
    sa.column("published", UTCDateTime),
    sa.column("infocode", sa.Text),
    sa.column("content_hash", sa.Text),
)
_FILED = sa.table("item_categories", sa.column("item_id", sa.BigInteger), sa.column("category_id"))


def _fields(row: sa.Row, categories: list[str]) -> list[str]:
    return [
        row.title,
        row.link or "",
        row.content_html or "",
        row.content_raw or "",
        row.summary_html or "",
        row.author or "",
        row.published.astimezone(UTC).isoformat(),
        " ".join(sorted(categories)),
        row.infocode or "",
    ]


def _old(fields: list[str]) -> str:
    parts: list[bytes] = []
    for value in fields:
        data = value.encode("utf-8")
        parts += (b"%d:" % len(data), data)
    return hashlib.sha256(b"".join(parts)).hexdigest()


def _new(fields: list[str]) -> str:
    blob = f"{len(fields)};" + "".join([f"{len(value)}:{value}" for value in fields])
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()


def _carry(was: Callable[[list[str]], str], becomes: Callable[[list[str]], str]) -> None:
    """Every item whose hash ``was`` gives from its row gets the hash ``becomes`` gives."""
    conn = op.get_bind()
    after = -1
    while True:
        rows = conn.execute(
            sa.select(_ITEMS).where(_ITEMS.c.id > after).order_by(_ITEMS.c.id).limit(_BATCH)
        ).all()
        if not rows:
            return
        after = rows[-1].id
        filed: dict[int, list[str]] = defaultdict(list)
        for item_id, category_id in conn.execute(
            sa.select(_FILED.c.item_id, _FILED.c.category_id).where(
                _FILED.c.item_id.in_([r.id for r in rows])
            )
        ):
            filed[item_id].append(category_id)
        updates = []
        for row in rows:
            fields = _fields(row, filed[row.id])
            try:
                if row.content_hash == was(fields):
                    updates.append({"b_id": row.id, "b_hash": becomes(fields)})
            except UnicodeEncodeError:  # a lone surrogate the old scheme could not hash
                continue
        if updates:
            conn.execute(
                sa.update(_ITEMS)
                .where(_ITEMS.c.id == sa.bindparam("b_id"))
                .values(content_hash=sa.bindparam("b_hash")),
                updates,
            )


def upgrade() -> None:
    _carry(_old, _new)


def downgrade() -> None:
    _carry(_new, _old)
