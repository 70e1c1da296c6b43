"""Each body stored once, in ``bodies``; versions and merged items name theirs by hash
(issue 19).

Every version's and every merged item's texts (sanitized body, summary, raw body) move
into one ``bodies`` row per distinct body, keyed by 16 bytes of BLAKE2b over the three
(store/bodies.py), and the columns they filled are dropped. A raw body is kept only where
a Jekyll post is written from it (safe as it is, ``postbody.is_safe_body``); a post of
any other item was already written from the sanitized body, so no output changes.

The merged hash counts the raw body, so where one is dropped the stored hash is carried
over: a hash the old texts reproduce from the row gets the value of the texts kept (the
scheme written out here, as 0004 did), and no item looks changed after the upgrade.
The downgrade puts the texts back (the dropped raw bodies stay dropped).

The space the old columns held is reused by SQLite for new rows; ``VACUUM`` returns it.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC
from typing import Any

import sqlalchemy as sa
from alembic import op

from aggregator.store.schema import UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_BATCH = 1000
_TEXTS = ("content_html", "summary_html", "content_raw")
_BODIES = sa.table(
    "bodies",
    sa.column("hash", sa.LargeBinary),
    sa.column("content_html", sa.Text),
    sa.column("summary_html", sa.Text),
    sa.column("content_raw", sa.Text),
    sa.column("raw_is_html", sa.Boolean),
)
_FILED = sa.table("item_categories", sa.column("item_id", sa.BigInteger), sa.column("category_id"))


def _table(name: str, *more: sa.ColumnClause[Any]) -> sa.TableClause:
    return sa.table(name, *(sa.column(t, sa.Text) for t in _TEXTS), sa.column("body"), *more)


_VERSIONS = _table("item_versions", sa.column("source_id", sa.Text), sa.column("key", sa.Text))
_ITEMS = _table(
    "items",
    sa.column("id", sa.BigInteger),
    sa.column("title", sa.Text),
    sa.column("link", sa.Text),
    sa.column("author", sa.Text),
    sa.column("published", UTCDateTime),
    sa.column("infocode", sa.Text),
    sa.column("enclosures", sa.Text),
    sa.column("content_hash", sa.Text),
)


def _digest(html: str | None, summary: str | None, raw: str | None) -> bytes | None:
    """store/bodies.py's key, written out: a migration must not change with the code."""
    if html is None and summary is None and raw is None:
        return None
    h = hashlib.blake2b(digest_size=16)
    for text in (html, summary, raw):
        if text is None:
            h.update(b"-")
        else:
            data = text.encode("utf-8", "surrogatepass")
            h.update(b"%d:" % len(data))
            h.update(data)
    return h.digest()


def _merged_hash(row: Any, raw: str | None, categories: list[str]) -> str:
    """store/merge.py's merged_hash over the stored row (0004's scheme, with enclosures)."""
    fields = [
        row.title,
        row.link or "",
        row.content_html or "",
        raw or "",
        row.summary_html or "",
        row.author or "",
        row.published.astimezone(UTC).isoformat(),
        " ".join(sorted(categories)),
        row.infocode or "",
    ]
    if row.enclosures:
        import json

        fields.append("+enclosures")
        for url, mime, length in json.loads(row.enclosures):
            fields.append(f"{url} {mime or ''} {'' if length is None else length}")
    blob = f"{len(fields)};" + "".join([f"{len(value)}:{value}" for value in fields])
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()


def _kept(raw: str | None) -> str | None:
    from aggregator.postbody import is_safe_body

    return raw if raw is not None and is_safe_body(raw) else None


def _batches(conn: sa.Connection, table: sa.TableClause, order: Sequence[str]) -> Any:
    """Every row of ``table``, ``_BATCH`` at a time, in ``order`` (keyset: no offsets)."""
    columns = [table.c[name] for name in order]
    after: tuple[Any, ...] | None = None
    while True:
        query = sa.select(table).order_by(*columns).limit(_BATCH)
        if after is not None:
            query = query.where(sa.tuple_(*columns) > sa.tuple_(*after))
        rows = conn.execute(query).all()
        if not rows:
            return
        after = tuple(getattr(rows[-1], name) for name in order)
        yield rows


def _store_bodies(conn: sa.Connection, found: dict[bytes, dict[str, Any]]) -> None:
    if not found:
        return
    known = set(
        conn.execute(sa.select(_BODIES.c.hash).where(_BODIES.c.hash.in_(list(found)))).scalars()
    )
    fresh = [row for key, row in found.items() if key not in known]
    if fresh:
        conn.execute(sa.insert(_BODIES), fresh)


def _body(html: str | None, summary: str | None, raw: str | None) -> tuple[bytes | None, Any]:
    key = _digest(html, summary, raw)
    same = raw is not None and raw == html
    row = {
        "hash": key,
        "content_html": html,
        "summary_html": summary,
        "content_raw": None if same else raw,
        "raw_is_html": same,
    }
    return key, row


def upgrade() -> None:
    conn = op.get_bind()
    op.create_table(
        "bodies",
        sa.Column("hash", sa.LargeBinary(16), nullable=False),
        sa.Column("content_html", sa.Text()),
        sa.Column("summary_html", sa.Text()),
        sa.Column("content_raw", sa.Text()),
        sa.Column("raw_is_html", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("hash", name="pk_bodies"),
    )
    op.add_column("item_versions", sa.Column("body", sa.LargeBinary(16)))
    op.add_column("items", sa.Column("body", sa.LargeBinary(16)))

    name_version = (
        sa.update(_VERSIONS)
        .where(
            _VERSIONS.c.source_id == sa.bindparam("b_source"),
            _VERSIONS.c.key == sa.bindparam("b_key"),
        )
        .values(body=sa.bindparam("b_body"))
    )
    for rows in _batches(conn, _VERSIONS, ("source_id", "key")):
        found: dict[bytes, dict[str, Any]] = {}
        named = []
        for r in rows:
            key, body = _body(r.content_html, r.summary_html, _kept(r.content_raw))
            if key is not None:
                found[key] = body
                named.append({"b_source": r.source_id, "b_key": r.key, "b_body": key})
        _store_bodies(conn, found)
        if named:
            conn.execute(name_version, named)

    name_item = (
        sa.update(_ITEMS)
        .where(_ITEMS.c.id == sa.bindparam("b_id"))
        .values(body=sa.bindparam("b_body"), content_hash=sa.bindparam("b_hash"))
    )
    for rows in _batches(conn, _ITEMS, ("id",)):
        filed: dict[int, list[str]] = defaultdict(list)
        for item_id, category_id in conn.execute(
            sa.select(_FILED.c.item_id, _FILED.c.category_id).where(
                _FILED.c.item_id.in_([r.id for r in rows])
            )
        ):
            filed[item_id].append(category_id)
        found = {}
        named = []
        for r in rows:
            raw = _kept(r.content_raw)
            key, body = _body(r.content_html, r.summary_html, raw)
            if key is not None:
                found[key] = body
            digest = r.content_hash
            if raw != r.content_raw and r.content_hash == _merged_hash(
                r, r.content_raw, filed[r.id]
            ):
                digest = _merged_hash(r, raw, filed[r.id])
            named.append({"b_id": r.id, "b_body": key, "b_hash": digest})
        _store_bodies(conn, found)
        conn.execute(name_item, named)

    for table in ("item_versions", "items"):
        for name in _TEXTS:  # SQLite (3.35+) and PostgreSQL alike; alembic's needs a batch
            op.execute(f"ALTER TABLE {table} DROP COLUMN {name}")
    op.create_index("ix_item_versions_body", "item_versions", ["body"])


def downgrade() -> None:
    conn = op.get_bind()
    op.drop_index("ix_item_versions_body", "item_versions")
    for table in ("item_versions", "items"):
        for name in ("content_raw", "content_html", "summary_html"):
            op.add_column(table, sa.Column(name, sa.Text()))
        target = sa.table(table, *(sa.column(t, sa.Text) for t in _TEXTS), sa.column("body"))
        for column in _TEXTS:
            text = sa.select(
                sa.case(
                    (_BODIES.c.raw_is_html, _BODIES.c.content_html), else_=_BODIES.c.content_raw
                )
                if column == "content_raw"
                else _BODIES.c[column]
            ).where(_BODIES.c.hash == target.c.body)
            conn.execute(sa.update(target).values({column: text.scalar_subquery()}))
        op.execute(f"ALTER TABLE {table} DROP COLUMN body")
    op.drop_table("bodies")
