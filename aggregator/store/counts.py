"""Each category's entry count and newest ``updated``, kept on its ``categories`` row.

Every statement that inserts or deletes ``item_categories`` rows, or changes an
item's ``updated``, tells a ``Tally`` in the same transaction; ``Tally.write``
adds the count deltas and moves ``updated`` forward. Only when the newest item
of a category leaves it (or gets an older ``updated``) is its maximum read
again from the category's items. Listing categories then reads a few rows,
not a GROUP BY over every item (issue 8).

The rows count every item filed under a category, those of a source gone
from the config too; ``uncarried`` says how many of those to take off (and a
newer ``updated`` than the rest), looked up only while such a source exists.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime

from sqlalchemy import Connection, bindparam, func, select, update

from aggregator.store.bulk import Query, chunks
from aggregator.store.feeds import CARRIED
from aggregator.store.schema import categories, item_categories, item_versions, items, sources


def _newest(cid: object) -> object:
    """Newest ``updated`` among the items filed under ``cid`` (a column or a value)."""
    return (
        select(func.max(items.c.updated))
        .select_from(item_categories.join(items, items.c.id == item_categories.c.item_id))
        .where(item_categories.c.category_id == cid)
        .scalar_subquery()
    )


def _count(cid: object) -> object:
    return (
        select(func.count())
        .select_from(item_categories)
        .where(item_categories.c.category_id == cid)
        .scalar_subquery()
    )


def recount(conn: Connection, ids: Collection[str] | None = None) -> None:
    """Count ``ids`` (None: every category) from scratch: new categories, migrations."""
    stmt = update(categories).values(
        entry_count=_count(categories.c.id), updated=_newest(categories.c.id)
    )
    if ids is None:
        conn.execute(stmt)
        return
    for part in chunks(sorted(set(ids))):
        conn.execute(stmt.where(categories.c.id.in_(part)))


def uncarried(
    conn: Connection, stored: Mapping[str, datetime | None]
) -> dict[str, tuple[int, datetime | None]]:
    """Categories holding items no configured source carries any more (a removed source's):
    how many such items, and the newest ``updated`` of the rest where one of them was the
    newest (``stored``: each category's row). Empty after one look while none is removed."""
    if conn.execute(select(sources.c.id).where(sources.c.removed).limit(1)).first() is None:
        return {}
    ic = item_categories.c
    of_removed = (
        select(item_versions.c.item_id)
        .join(sources, sources.c.id == item_versions.c.source_id)
        .where(sources.c.removed)
    )
    rows = conn.execute(
        select(ic.category_id, func.count().label("n"), func.max(items.c.updated).label("newest"))
        .select_from(item_categories.join(items, items.c.id == ic.item_id))
        .where(ic.item_id.in_(of_removed), ~CARRIED)
        .group_by(ic.category_id)
    )
    found: dict[str, tuple[int, datetime | None]] = {}
    for row in rows:
        newest = stored.get(row.category_id)
        if newest is not None and row.newest is not None and row.newest >= newest:
            newest = conn.execute(
                select(func.max(items.c.updated))
                .select_from(item_categories.join(items, items.c.id == ic.item_id))
                .where(ic.category_id == row.category_id, CARRIED)
            ).scalar()
        found[row.category_id] = (int(row.n), newest)
    return found


_c = categories.c
#: Tally.write's updates, built once (each apply writes some)
_MOVED = Query(
    update(categories)
    .where(_c.id == bindparam("b_id"))
    .values(
        entry_count=_c.entry_count + bindparam("b_delta"),
        updated=bindparam("b_updated", type_=_c.updated.type),
    )
)
_REREAD = Query(
    update(categories)
    .where(_c.id == bindparam("b_id"))
    .values(entry_count=_c.entry_count + bindparam("b_delta"), updated=_newest(_c.id))
)


class Tally:
    """The item_categories rows one transaction added and removed, with their items' ``updated``."""

    def __init__(self) -> None:
        self.delta: Counter[str] = Counter()
        self.added: dict[str, datetime] = {}  #: newest ``updated`` filed under each category
        self.removed: dict[str, datetime] = {}  #: newest ``updated`` taken out of each

    def add(self, category_ids: Iterable[str], updated: datetime, items: int = 1) -> None:
        """``items`` items filed under ``category_ids``, the newest of them ``updated``."""
        for cid in set(category_ids):
            self.delta[cid] += items
            if cid not in self.added or updated > self.added[cid]:
                self.added[cid] = updated

    def remove(self, category_ids: Iterable[str], updated: datetime, items: int = 1) -> None:
        """``items`` items taken out of ``category_ids``, the newest of them ``updated``."""
        for cid in set(category_ids):
            self.delta[cid] -= items
            if cid not in self.removed or updated > self.removed[cid]:
                self.removed[cid] = updated

    def __bool__(self) -> bool:
        """Something to write."""
        return bool(self.delta or self.added or self.removed)

    def write(self, conn: Connection, updated: Mapping[str, datetime | None] | None = None) -> None:
        """Apply to ``categories``; call after the item_categories and items rows are written.

        ``updated``: every category's stored ``updated``, if the caller has read them already
        (under the items lock, so they cannot have moved since).
        """
        ids = sorted(set(self.delta) | set(self.added) | set(self.removed))
        if not ids:
            return
        stored: dict[str, datetime | None] = {}
        if updated is not None:
            stored.update((cid, updated[cid]) for cid in ids if cid in updated)
        else:
            for part in chunks(ids):
                rows = conn.execute(
                    select(categories.c.id, categories.c.updated).where(categories.c.id.in_(part))
                )
                stored.update((row.id, row.updated) for row in rows)
        moved, reread = [], []
        for cid in ids:
            if cid not in stored:  # no such category (yet): recount() counts it when added
                continue
            newest, gone, came = stored[cid], self.removed.get(cid), self.added.get(cid)
            if (
                gone is not None
                and (newest is None or gone >= newest)
                and (came is None or came < gone)
            ):
                # the newest may have left, and nothing as new came: ask the items
                reread.append({"b_id": cid, "b_delta": self.delta[cid]})
                continue
            if came is not None and (newest is None or came > newest):
                newest = came
            moved.append({"b_id": cid, "b_delta": self.delta[cid], "b_updated": newest})
        _MOVED.many(conn, moved)
        _REREAD.many(conn, reread)
