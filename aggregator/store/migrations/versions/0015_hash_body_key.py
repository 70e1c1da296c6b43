"""Merged items' hashes over their body's key, not its three texts (issue 16).

The merged hash (store/merge.py) took the sanitized body, the summary and the raw
body; it now takes ``items.body``, the key bodies.py makes of exactly those three
texts, so re-applying rules hashes an item without reading its body. Every stored
hash is computed again from the row: title, link, body key, author, published, the
categories it is filed under (none where dropped), infoCode and enclosures, the values
a re-merge of the unchanged item hashes, so no item looks changed (and no entry's
``updated`` moves) after the upgrade; no text is read. The downgrade reads the texts
back to give the old scheme's hashes. Both schemes are written out here: a migration
must not change with the code.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC
from typing import Any

import sqlalchemy as sa
from alembic import op

from aggregator.store.schema import UTCDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_BATCH = 2000
_ITEMS = sa.table(
    "items",
    sa.column("id", sa.BigInteger),
    sa.column("title", sa.Text),
    sa.column("link", sa.Text),
    sa.column("body", sa.LargeBinary),
    sa.column("author", sa.Text),
    sa.column("published", UTCDateTime),
    sa.column("infocode", sa.Text),
    sa.column("enclosures", sa.Text),
    sa.column("dropped", sa.Boolean),
    sa.column("content_hash", sa.Text),
)
_BODIES = sa.table(
    "bodies",
    sa.column("hash", sa.LargeBinary),
    sa.column("content_html", sa.Text),
    sa.column("summary_html", sa.Text),
    sa.column("content_raw", sa.Text),
    sa.column("raw_is_html", sa.Boolean),
)
_FILED = sa.table("item_categories", sa.column("item_id", sa.BigInteger), sa.column("category_id"))
_i, _b = _ITEMS.c, _BODIES.c
_ROW = (_i.id, _i.title, _i.link, _i.author, _i.published, _i.infocode, _i.enclosures, _i.dropped)
#: the texts as the old scheme read them, from the row ``items.body`` names
_TEXTS = (
    _b.content_html,
    _b.summary_html,
    sa.case((_b.raw_is_html, _b.content_html), else_=_b.content_raw).label("content_raw"),
)


def _digest(fields: list[str]) -> str:
    """aggregator/digest.py's fields_digest, written out."""
    blob = f"{len(fields)};" + "".join([f"{len(value)}:{value}" for value in fields])
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()


def _rest(row: Any, categories: list[str]) -> list[str]:
    """The fields after the body's, and the enclosures (both schemes alike)."""
    fields = [
        row.author or "",
        row.published.astimezone(UTC).isoformat(),
        " ".join(sorted(categories)),
        row.infocode or "",
    ]
    if row.enclosures:
        fields.append("+enclosures")
        for url, mime, length in json.loads(row.enclosures):
            fields.append(f"{url} {mime or ''} {'' if length is None else length}")
    return fields


def _by_key(row: Any, categories: list[str]) -> str:
    """The scheme from 0015: the body by its key."""
    body = "" if row.body is None else bytes(row.body).hex()
    return _digest([row.title, row.link or "", body, *_rest(row, categories)])


def _by_texts(row: Any, categories: list[str]) -> str:
    """The scheme before 0015 (0012's): the body's three texts."""
    texts = [row.content_html or "", row.content_raw or "", row.summary_html or ""]
    return _digest([row.title, row.link or "", *texts, *_rest(row, categories)])


def _rehash(query: sa.Select[Any], scheme: Callable[[Any, list[str]], str]) -> None:
    """Every item's hash as ``scheme`` gives it from the row ``query`` reads."""
    conn = op.get_bind()
    write = (
        sa.update(_ITEMS)
        .where(_i.id == sa.bindparam("b_id"))
        .values(content_hash=sa.bindparam("b_hash"))
    )
    after = -1
    while True:
        rows = conn.execute(query.where(_i.id > after).order_by(_i.id).limit(_BATCH)).all()
        if not rows:
            return
        after = rows[-1].id
        filed: dict[int, list[str]] = defaultdict(list)
        for item_id, category_id in conn.execute(
            sa.select(_FILED.c.item_id, _FILED.c.category_id).where(
                _FILED.c.item_id.between(rows[0].id, after)
            )
        ):
            filed[item_id].append(category_id)
        conn.execute(
            write,
            [{"b_id": r.id, "b_hash": scheme(r, [] if r.dropped else filed[r.id])} for r in rows],
        )


def upgrade() -> None:
    _rehash(sa.select(*_ROW, _i.body), _by_key)


def downgrade() -> None:
    joined = _ITEMS.outerjoin(_BODIES, _b.hash == _i.body)
    _rehash(sa.select(*_ROW, *_TEXTS).select_from(joined), _by_texts)
