"""Reading merged items as the writers want them: newest first, per category or all."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import ColumnElement, Connection, Exists, Select, exists, select

from aggregator.model import Entry
from aggregator.store import bodies
from aggregator.store.bulk import chunks
from aggregator.store.schema import item_categories, item_versions, items, sources

_COLUMNS = (
    items.c.id,
    items.c.key,
    items.c.infocode,
    items.c.title,
    items.c.link,
    *bodies.COLUMNS,
    items.c.author,
    items.c.published,
    items.c.updated,
    items.c.post_category,
    items.c.enclosures,
)


def carried(item_id: ColumnElement[int]) -> Exists:
    """The item ``item_id`` is carried by some source still in the config."""
    return exists(
        select(1)
        .select_from(item_versions.join(sources, sources.c.id == item_versions.c.source_id))
        .where(item_versions.c.item_id == item_id, sources.c.removed.is_(False))
    )


#: carried by some source still in the config (a removed source's items leave the feeds,
#: the index's counts and the status page's chart)
CARRIED = carried(items.c.id)


def entries(conn: Connection, category: str | None, limit: int | None) -> list[Entry]:
    """Newest ``limit`` entries (None: all) by published, ties by key; both orders ride an index."""
    if limit is not None and limit <= 0:
        return []
    if category is None:
        # a dropped item is filed nowhere; only all.atom has to leave it out by itself
        stmt = (
            select(*_COLUMNS)
            .select_from(bodies.joined(items))
            .where(items.c.dropped.is_(False), CARRIED)
            .order_by(items.c.published.desc(), items.c.key)
        )
    else:
        ic = item_categories.c
        stmt = (
            select(*_COLUMNS)
            .select_from(item_categories.join(bodies.joined(items), items.c.id == ic.item_id))
            .where(ic.category_id == category, CARRIED)
            .order_by(ic.published.desc(), ic.key)
        )
    return _entries(conn, stmt if limit is None else stmt.limit(limit))


def changed_entries(conn: Connection, since: int) -> list[Entry]:
    """The entries whose items changed after change counter ``since`` (their posts follow)."""
    stmt = (
        select(*_COLUMNS)
        .select_from(bodies.joined(items))
        .where(items.c.changed > since, items.c.dropped.is_(False))  # a dropped one gets none
        .order_by(items.c.key)
    )
    return _entries(conn, stmt)


def dropped_items(conn: Connection, since: int) -> list[tuple[str, str | None]]:
    """(key, infoCode) of the items the rules drop that changed after counter ``since``:
    the posts written of them before they were dropped are deleted (0: every one)."""
    stmt = select(items.c.key, items.c.infocode).where(items.c.dropped.is_(True))
    if since > 0:  # 0: also the items last changed before there was a counter (None)
        stmt = stmt.where(items.c.changed > since)
    return [(key, infocode) for key, infocode in conn.execute(stmt.order_by(items.c.key))]


def _entries(conn: Connection, stmt: Select[Any]) -> list[Entry]:
    rows = conn.execute(stmt).all()
    filed: dict[int, list[str]] = defaultdict(list)
    carried: dict[int, list[str]] = defaultdict(list)
    linked: dict[int, set[str]] = defaultdict(set)
    for part in chunks([row.id for row in rows]):
        for link in conn.execute(
            select(item_categories.c.item_id, item_categories.c.category_id)
            .where(item_categories.c.item_id.in_(part))
            .order_by(item_categories.c.category_id)
        ):
            filed[link.item_id].append(link.category_id)
        for version in conn.execute(
            select(item_versions.c.item_id, item_versions.c.source_id, item_versions.c.link)
            .where(item_versions.c.item_id.in_(part))
            .order_by(item_versions.c.source_id)
        ):
            carried[version.item_id].append(version.source_id)
            if version.link:
                linked[version.item_id].add(version.link)
    return [
        Entry(
            key=row.key,
            infocode=row.infocode,
            title=row.title,
            link=row.link,
            content_html=row.content_html,
            content_raw=row.content_raw,
            summary_html=row.summary_html,
            author=row.author,
            published=row.published,
            updated=row.updated,
            categories=tuple(filed[row.id]),
            post_category=row.post_category,
            sources=tuple(carried[row.id]),
            enclosures=row.enclosures or (),
            via=tuple(sorted(linked[row.id] - {row.link})),
        )
        for row in rows
    ]
