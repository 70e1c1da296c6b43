"""The stories stored twice before 0010, merged once into the item readers saw first.

    merge_duplicates (once: meta 'merge_duplicates', set by migration 0011)
      1. the items whose versions share a canonical link with another item's
      2. rejoin.survivors: which of them the join rules make one, and the oldest of each
      3. each other item's versions move to its survivor (merged_by ``canonical link``),
         its key and Atom uuid become aliases of the survivor, and it is deleted
      4. the survivors are merged again from all their versions (the config's rules)
      5. every category either was filed under is stamped changed: the next write
         rewrites those feeds once, with one entry per story

One transaction: a reader of the store sees both items before and one after, never
none; the feeds on disk keep both until that write. Nothing is lost: every version
stays, under the survivor, and the merged-away ids still find it (``explain``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, distinct, func, insert, select, update

from aggregator.entryid import key_uuid
from aggregator.rejoin import StoredItem, survivors
from aggregator.rules import RuleSet
from aggregator.store import categories as cats
from aggregator.store.bulk import chunks
from aggregator.store.items import Merger, lock_items
from aggregator.store.joins import LINK, title_norm
from aggregator.store.schema import item_aliases, item_categories, item_versions, items, meta

PENDING = "merge_duplicates"  #: the meta row that asks for the merge

_v = item_versions.c
_PENDING = select(meta.c.value).where(meta.c.name == PENDING)
_SHARED = (
    select(_v.canon)
    .where(_v.canon.is_not(None))
    .group_by(_v.canon)
    .having(func.count(distinct(_v.item_id)) > 1)
)
_INVOLVED = select(_v.item_id).where(_v.canon.in_(_SHARED))
_VERSIONS = (
    select(_v.item_id, _v.source_id, _v.canon, _v.title_norm, _v.title, items.c.key)
    .select_from(item_versions.join(items, items.c.id == _v.item_id))
    .where(_v.item_id.in_(_INVOLVED))
)
_LOSERS = select(items.c.id, items.c.key, items.c.uuid, items.c.updated).where(
    items.c.id.in_(bindparam("ids", expanding=True))
)
_FILED = select(item_categories.c.item_id, item_categories.c.category_id).where(
    item_categories.c.item_id.in_(bindparam("ids", expanding=True))
)
_RULED = (
    update(item_versions)
    .where(_v.item_id == bindparam("b_loser"), _v.merged_by.is_(None))
    .values(merged_by=LINK)
)
_MOVE = (
    update(item_versions)
    .where(_v.item_id == bindparam("b_loser"))
    .values(item_id=bindparam("b_survivor"))
)
_MOVE_ALIASES = (
    update(item_aliases)
    .where(item_aliases.c.item_id == bindparam("b_loser"))
    .values(item_id=bindparam("b_survivor"))
)


@dataclass(frozen=True, slots=True)
class Merged:
    """What one merge_duplicates did."""

    merged: int = 0  #: items merged into another
    categories: frozenset[str] = frozenset()  #: categories whose feeds change


def pending(conn: Connection) -> bool:
    return bool(conn.execute(_PENDING).scalar())


def merged_away(conn: Connection, since: int | None) -> list[str]:
    stmt = select(item_aliases.c.key).order_by(item_aliases.c.key)
    if since is not None:
        stmt = stmt.where(item_aliases.c.changed > since)
    return list(conn.execute(stmt).scalars())


def merge_duplicates(conn: Connection, rules: RuleSet, now: datetime) -> Merged:
    """Merge the stories stored twice (module docstring), once; later calls do nothing."""
    lock_items(conn)
    if not pending(conn):
        return Merged()
    done = _merge(conn, rules, now)
    conn.execute(delete(meta).where(meta.c.name == PENDING))
    return done


def _merge(conn: Connection, rules: RuleSet, now: datetime) -> Merged:
    found: dict[int, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    keys: dict[int, str] = {}
    for row in conn.execute(_VERSIONS):
        keys[row.item_id] = row.key
        seen = found[row.item_id]
        seen["sources"].add(row.source_id)
        if row.canon:
            seen["canons"].add(row.canon)
        title = title_norm(row)
        if title:
            seen["titles"].add(title)
    into = survivors(
        StoredItem(
            item_id,
            keys[item_id],
            frozenset(seen["sources"]),
            frozenset(seen["canons"]),
            frozenset(seen["titles"]),
        )
        for item_id, seen in found.items()
    )
    if not into:
        return Merged()
    losers = sorted(into)
    merger = Merger(conn, now, rules)
    gone: list[Any] = []
    filed: dict[int, list[str]] = defaultdict(list)
    for part in chunks(losers):
        gone.extend(conn.execute(_LOSERS, {"ids": part}))
        for link in conn.execute(_FILED, {"ids": part}):
            filed[link.item_id].append(link.category_id)
    for row in gone:  # each leaves its feeds
        merger.changed_categories.update(filed[row.id])
        merger.tally.remove(filed[row.id], row.updated)
    moves = [{"b_loser": loser, "b_survivor": into[loser]} for loser in losers]
    conn.execute(_RULED, moves)
    conn.execute(_MOVE, moves)
    conn.execute(_MOVE_ALIASES, moves)
    for part in chunks(losers):
        conn.execute(delete(item_categories).where(item_categories.c.item_id.in_(part)))
        conn.execute(delete(items).where(items.c.id.in_(part)))
    merger.remerge_all(sorted(set(into.values())))
    merger.write_counts()
    counter = cats.bump(conn, merger.changed_categories, merger.changed_keys)
    stamp = counter if counter is not None else cats.change_counter(conn)
    conn.execute(
        insert(item_aliases),
        [
            {
                "key": row.key,
                "uuid": row.uuid or key_uuid(row.key),
                "item_id": into[row.id],
                "changed": stamp,
            }
            for row in gone
        ],
    )
    return Merged(len(losers), frozenset(merger.changed_categories))
