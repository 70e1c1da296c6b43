"""Categories (declared in the config or found as publishers) and their change counters.

Every transaction that changes some feeds bumps the one counter in ``meta``
and stamps each changed category with the new value, so another instance
sharing the database rewrites just those feeds: ``changed_since(seen)``.
The row lock on ``meta`` orders the bumps as the commits, so no change can
hide below a counter a reader has already seen.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, select, update

from aggregator.errors import StoreError
from aggregator.model import Category, CategoryInfo, CategoryNames
from aggregator.store import counts
from aggregator.store.bulk import Query, chunks, insert_missing, upsert
from aggregator.store.engine import ITEMS_LOCK
from aggregator.store.records import Changes
from aggregator.store.schema import categories, category_changes, items, meta


class CategoryClash(StoreError):
    """A publisher category id another publisher's name took first (a race of two polls)."""


@dataclass(frozen=True, slots=True)
class CategoryRank:
    """What the merge needs to choose a post's category."""

    publisher: bool
    position: int | None


def sync_categories(conn: Connection, declared: Sequence[Category]) -> None:
    """Declared categories take the config's title and order; publishers' ones stay."""
    known = {row.id: row for row in conn.execute(select(categories.c.id, categories.c.publisher))}
    added = [c.id for c in declared if c.id not in known]
    if added:
        lock_items(conn)  # no item writer files items under them between the insert and the count
    rows = [
        {
            "id": c.id,
            "title": c.title,
            "description": c.description,
            "origin": "config",
            "position": position,
            "publisher": bool(known[c.id].publisher) if c.id in known else False,
        }
        for position, c in enumerate(declared)
    ]
    upsert(conn, categories, rows, ["id"], ["title", "description", "origin", "position"])
    counts.recount(conn, added)  # items filed under it before it was declared (or again)
    ids = {c.id for c in declared}
    gone = sorted(cid for cid in known if cid not in ids)
    for part in chunks(gone):
        # no longer declared: a publisher's category stays one, any other is no longer listed
        was_declared = categories.c.id.in_(part) & (categories.c.origin == "config")
        conn.execute(
            update(categories)
            .where(was_declared, categories.c.publisher.is_(True))
            .values(origin="publisher", position=None)
        )
        conn.execute(delete(categories).where(was_declared, categories.c.publisher.is_(False)))


def ensure_categories(conn: Connection, found: Sequence[Category]) -> None:
    """Publisher categories: added if new, flagged as some item's publisher either way."""
    if not found:
        return
    unique = {c.id: c for c in found}
    if _missing(conn, unique):
        lock_items(conn)
    added = _missing(conn, unique)
    insert_missing(
        conn,
        categories,
        [
            {
                "id": c.id,
                "title": c.title,
                "description": c.description,
                "origin": "publisher",
                "publisher": True,
            }
            for c in unique.values()
        ],
        ["id"],
    )
    counts.recount(conn, added)
    for part in chunks(sorted(unique)):
        rows = conn.execute(
            select(categories.c.id, categories.c.title).where(
                categories.c.id.in_(part), categories.c.origin == "publisher"
            )
        )
        for row in rows:
            if row.title != unique[row.id].title:  # two new names met at once in two polls
                raise CategoryClash(
                    f"category {row.id!r} was just taken by {row.title!r}; "
                    f"{unique[row.id].title!r} gets another id at the next poll"
                )
    conn.execute(
        update(categories)
        .where(categories.c.id.in_(list(unique)), categories.c.publisher.is_(False))
        .values(publisher=True)
    )


def _missing(conn: Connection, ids: Collection[str]) -> list[str]:
    known: set[str] = set()
    for part in chunks(sorted(ids)):
        known.update(
            conn.execute(select(categories.c.id).where(categories.c.id.in_(part))).scalars()
        )
    return sorted(set(ids) - known)


def category_names(conn: Connection) -> CategoryNames:
    """Every category's title and id; where titles repeat, a declared category's id."""
    rows = conn.execute(
        select(categories.c.id, categories.c.title).order_by(
            (categories.c.origin == "config").desc(), categories.c.id.desc()
        )
    ).all()
    by_title: dict[str, str] = {}
    for row in reversed(rows):  # the first row of each title wins: declared, then lowest id
        by_title[row.title] = row.id
    return CategoryNames(by_title, frozenset(row.id for row in rows))


def lock_items(conn: Connection) -> None:
    """Serialize with item writers: PostgreSQL's advisory lock; SQLite's BEGIN IMMEDIATE did."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({ITEMS_LOCK})")


@dataclass(frozen=True, slots=True)
class Categories:
    """Every category as an item writer needs it, read once per apply."""

    ranks: dict[str, CategoryRank]  #: for the merge's post category
    newest: dict[str, datetime | None]  #: stored ``updated``, for counts.Tally.write


_ALL = select(categories.c.id, categories.c.publisher, categories.c.position, categories.c.updated)


def read_categories(conn: Connection) -> Categories:
    rows = conn.execute(_ALL).all()
    return Categories(
        ranks={row.id: CategoryRank(bool(row.publisher), row.position) for row in rows},
        newest={row.id: row.updated for row in rows},
    )


def post_category(
    merged: Sequence[str], winner: Sequence[str], rank: dict[str, CategoryRank]
) -> str | None:
    """Where a Jekyll post goes: the winner's publisher category, any publisher, config order."""
    if not merged:
        return None
    for pool in (winner, merged):
        publishers = sorted(c for c in pool if c in rank and rank[c].publisher)
        if publishers:
            return publishers[0]

    def order(cid: str) -> tuple[int, str]:
        position = rank[cid].position if cid in rank else None
        return (position if position is not None else 1 << 30, cid)

    return min(merged, key=order)


def category_infos(conn: Connection) -> list[CategoryInfo]:
    """Every category, config order first, with its entry count and newest ``updated``
    (kept on the row by counts.py: no scan of the items), less the items of removed
    sources, as the feeds show them."""
    rows = conn.execute(
        select(categories).order_by(
            categories.c.position.is_(None), categories.c.position, categories.c.id
        )
    ).all()
    gone = counts.uncarried(conn, {row.id: row.updated for row in rows})
    return [
        CategoryInfo(
            id=row.id,
            title=row.title,
            description=row.description,
            origin=row.origin,
            entry_count=row.entry_count - gone.get(row.id, (0, None))[0],
            updated=gone[row.id][1] if row.id in gone else row.updated,
        )
        for row in rows
    ]


_STAMP = Query(
    update(meta)
    .where(meta.c.name == "changes")
    .values(value=meta.c.value + 1)
    .returning(meta.c.value)
)


def stamp(conn: Connection) -> int:
    """This transaction's new counter value (the row lock on ``meta`` is held to the commit)."""
    (row,) = _STAMP.rows(conn)
    return int(row.value)


def bump(
    conn: Connection,
    changed: Collection[str],
    keys: Collection[str] = (),
    *,
    value: int | None = None,
) -> int | None:
    """Stamp ``changed`` categories, and the items of ``keys``, with a new counter value;
    None when nothing changed. ``value``: the one ``stamp`` gave this transaction already
    (the rows written with it need no second write)."""
    if not changed and not keys and value is None:
        return None
    if value is None:
        value = stamp(conn)
    if changed:
        upsert(
            conn,
            category_changes,
            [{"category_id": cid, "counter": value} for cid in sorted(changed)],
            ["category_id"],
            ["counter"],
        )
    for part in chunks(sorted(keys)):
        conn.execute(update(items).where(items.c.key.in_(part)).values(changed=value))
    return value


def change_counter(conn: Connection) -> int:
    return int(conn.execute(select(meta.c.value).where(meta.c.name == "changes")).scalar_one())


def changed_since(conn: Connection, seen: int) -> Changes:
    counter = change_counter(conn)
    rows = conn.execute(
        select(category_changes.c.category_id).where(category_changes.c.counter > seen)
    )
    return Changes(counter, frozenset(row.category_id for row in rows))
