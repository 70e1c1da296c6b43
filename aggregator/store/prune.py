"""Retention: old items go, leaving tombstones so a source re-serving one adds nothing."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, func, select

from aggregator.store import bodies, counts
from aggregator.store import categories as cats
from aggregator.store.bulk import chunks, insert_missing
from aggregator.store.items import lock_items
from aggregator.store.schema import (
    item_aliases,
    item_categories,
    item_versions,
    items,
    tombstones,
)
from aggregator.store.sources import recount_items


def prune(conn: Connection, older_than: datetime, keep_per_category: int, now: datetime) -> int:
    """Delete items published before ``older_than`` that no feed still shows; returns how many.

    A feed shows the newest ``keep_per_category`` of its category (or of all,
    for the items no category holds); those stay whatever their age.
    """
    lock_items(conn)
    ic = item_categories.c
    ranked = select(
        ic.item_id,
        func.row_number()
        .over(partition_by=ic.category_id, order_by=(ic.published.desc(), ic.key))
        .label("rank"),
    ).subquery()
    shown = select(ranked.c.item_id).where(ranked.c.rank <= keep_per_category)
    newest = (
        select(items.c.id)
        .where(items.c.dropped.is_(False))  # all.atom's entries
        .order_by(items.c.published.desc(), items.c.key)
        .limit(keep_per_category)
    ).subquery()
    victims = conn.execute(
        select(items.c.id, items.c.key).where(
            items.c.published < older_than,
            items.c.id.not_in(shown),
            items.c.id.not_in(select(newest.c.id)),
        )
    ).all()
    if not victims:
        return 0
    ids = sorted(row.id for row in victims)
    changed: set[str] = set()
    carriers: set[str] = set()
    texts: set[bytes] = set()  # the victims' bodies: deleted unless another version names one
    gone = {row.key for row in victims}
    tally = counts.Tally()
    for part in chunks(ids):
        for row in conn.execute(
            select(ic.category_id, items.c.updated)
            .select_from(item_categories.join(items, items.c.id == ic.item_id))
            .where(ic.item_id.in_(part))
        ):
            changed.add(row.category_id)
            tally.remove([row.category_id], row.updated)
        for version in conn.execute(
            select(item_versions.c.source_id, item_versions.c.key, item_versions.c.body).where(
                item_versions.c.item_id.in_(part)
            )
        ):
            carriers.add(version.source_id)
            if version.body is not None:
                texts.add(version.body)
            gone.add(version.key)  # a version that joined by link: its own key stays gone too
    insert_missing(
        conn, tombstones, [{"key": key, "pruned_at": now} for key in sorted(gone)], ["key"]
    )
    for part in chunks(ids):
        # explicit deletes of the dependents: no reliance on ON DELETE CASCADE being enforced
        conn.execute(delete(item_categories).where(ic.item_id.in_(part)))
        conn.execute(delete(item_versions).where(item_versions.c.item_id.in_(part)))
        conn.execute(delete(item_aliases).where(item_aliases.c.item_id.in_(part)))
        conn.execute(delete(items).where(items.c.id.in_(part)))
    bodies.collect(conn, texts)
    tally.write(conn)
    recount_items(conn, sorted(carriers))
    cats.bump(conn, changed)
    return len(ids)
